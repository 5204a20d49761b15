"""Parquet tables and shards: written atomically, read with the file named in every error."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vdr.io.files import atomic_path


def write_table(path: str | Path, table: pa.Table) -> None:
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)


def write_shards(directory: Path, rows: list[dict], schema: pa.Schema, shard_size: int, prefix: str = "part") -> None:
    """Write rows as numbered Parquet shards of at most `shard_size` rows into `directory` (which must be new)."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(range(0, max(len(rows), 1), shard_size)):
        chunk = rows[start : start + shard_size]
        pq.write_table(pa.Table.from_pylist(chunk, schema=schema), directory / f"{prefix}-{number:05d}.parquet")


def read_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read one Parquet file or a directory of shards (sorted by name)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the stage that produces it first (dvc repro)")
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{path} holds no .parquet shards")
        return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    return pq.read_table(path, columns=columns)


def is_binary(data_type: pa.DataType) -> bool:
    """Whether a column holds bytes (page images) rather than strings (page texts)."""
    return pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type)


def require_columns(table: pa.Table, columns: list[str], where: str | Path) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; found {table.column_names}")
