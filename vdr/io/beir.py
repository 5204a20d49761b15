"""The BEIR / MTEB retrieval layout: reading and checking corpus, queries and qrels (qrels files: vdr/io/qrels.py).

A dataset directory in the BEIR / MTEB layout holds
  corpus.parquet or corpus/*.parquet   columns: id, and image (PNG/JPEG bytes) and/or text
  queries.parquet                      columns: id, text
  qrels.tsv                            header: query-id, corpus-id, score
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from vdr.io.qrels import read_qrels
from vdr.io.tables import read_table, require_columns


def corpus_path(dataset: Path) -> Path:
    return dataset / "corpus.parquet" if (dataset / "corpus.parquet").exists() else dataset / "corpus"


def require_unique(ids: list[str], where: str | Path, what: str = "id") -> None:
    seen, duplicates = set(), []
    for value in ids:
        if value in seen and value not in duplicates:
            duplicates.append(value)
        seen.add(value)
    if duplicates:
        shown = ", ".join(repr(d) for d in duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
        raise ValueError(
            f"{where}: duplicate {what}(s) {shown} ({len(duplicates)} in all); "
            f"every {what} must name one row, drop or rename the repeats"
        )


def require_trec_ids(ids: list, where: str | Path, what: str = "id") -> None:
    """Every id present, not empty and free of whitespace: a TREC run file separates its columns by whitespace, so
    such an id could not be written (or read back) faithfully."""
    for row, value in enumerate(ids):
        if value is None:
            raise ValueError(f"{where}: row {row} has no {what} (null); give every row an id")
        text = str(value)
        if not text or any(character.isspace() for character in text):
            raise ValueError(
                f"{where}, row {row}: {what} {text!r} is empty or contains whitespace, which a TREC run file "
                "cannot hold (whitespace separates its columns); rename it, e.g. with '_' for each space"
            )


def text_column(
    table: pa.Table, column: str, where: str | Path, ids: list[str], fix: str, nulls: bool = False
) -> list[str | None]:
    """The cells of a text column as Python strings; a ValueError naming the file, the column and the row and id of
    the first cell that is not text: a column of another type, bytes that are not UTF-8, or (unless `nulls`) a null.
    `fix` ends the message about a null cell."""
    values = table[column]
    if pa.types.is_null(values.type):
        cells = [None] * table.num_rows
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        try:
            values.validate(full=True)
        except pa.ArrowInvalid:
            for row, cell in enumerate(values.cast(pa.large_binary()).to_pylist()):
                try:
                    if cell is not None:
                        cell.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ValueError(
                        f"{where}: column '{column}', row {row} (id '{ids[row]}') is not UTF-8 text (byte offset "
                        f"{error.start} in the cell); write the text as UTF-8"
                    ) from None
            raise
        cells = values.to_pylist()
    else:
        raise ValueError(
            f"{where}: column '{column}' holds {values.type} values, not text"
            + (f" (e.g. row 0, id '{ids[0]}')" if ids else "")
            + "; store it as a string column"
        )
    if not nulls and None in cells:
        row = cells.index(None)
        raise ValueError(f"{where}: column '{column}', row {row} (id '{ids[row]}') is null; {fix}")
    return cells


def check_retrieval_set(
    corpus_ids: list[str], query_ids: list[str], qrels: dict[str, dict[str, int]], where: dict[str, Path]
) -> None:
    """Ids present, unique and writable to a TREC run, a corpus and a query set that are not empty, and qrels that
    name only known queries and pages. `where` names the files: {"corpus": ..., "queries": ..., "qrels": ...}."""
    if not corpus_ids:
        raise ValueError(f"{where['corpus']}: the corpus is empty (no pages); a retrieval set needs at least one page")
    if not query_ids:
        raise ValueError(
            f"{where['queries']}: the query set is empty (no rows); a retrieval set needs at least one query, with "
            f"its relevant pages in {Path(where['qrels']).name}"
        )
    require_trec_ids(corpus_ids, where["corpus"], "corpus id")
    require_trec_ids(query_ids, where["queries"], "query id")
    require_unique(corpus_ids, where["corpus"], "corpus id")
    require_unique(query_ids, where["queries"], "query id")
    known_queries, known_pages = set(query_ids), set(corpus_ids)
    for query_id, documents in qrels.items():
        if query_id not in known_queries:
            raise ValueError(
                f"{where['qrels']}: query-id '{query_id}' is not in {where['queries']}; "
                "drop its lines or add the query"
            )
        for corpus_id in documents:
            if corpus_id not in known_pages:
                raise ValueError(
                    f"{where['qrels']}: corpus-id '{corpus_id}' (query '{query_id}') "
                    f"is not in the corpus {where['corpus']}; "
                    "drop that line or add the page"
                )


def load_beir(dataset: str | Path) -> tuple[pa.Table, dict[str, str], dict[str, dict[str, int]]]:
    """(corpus table, {query id: text}, qrels) of a BEIR-layout dataset directory, checked for consistency."""
    dataset = Path(dataset)
    corpus = read_table(corpus_path(dataset))
    require_columns(corpus, ["id"], corpus_path(dataset))
    if "text" not in corpus.column_names and "image" not in corpus.column_names:
        raise ValueError(f"{corpus_path(dataset)}: needs a 'text' or an 'image' column")
    queries_table = read_table(dataset / "queries.parquet")
    require_columns(queries_table, ["id", "text"], dataset / "queries.parquet")
    query_ids = [None if i is None else str(i) for i in queries_table["id"].to_pylist()]
    corpus_ids = [None if i is None else str(i) for i in corpus["id"].to_pylist()]
    qrels = read_qrels(dataset / "qrels.tsv")
    check_retrieval_set(
        corpus_ids,
        query_ids,
        qrels,
        {"corpus": corpus_path(dataset), "queries": dataset / "queries.parquet", "qrels": dataset / "qrels.tsv"},
    )
    texts = text_column(
        queries_table,
        "text",
        dataset / "queries.parquet",
        query_ids,
        "give the query its text, or drop the query and its qrels lines",
    )
    for query_id, text in zip(query_ids, texts):
        if not text.strip():
            raise ValueError(
                f"{dataset / 'queries.parquet'}: query id '{query_id}' has an empty text; "
                "give it its text, or drop the query and its qrels lines"
            )
    if "text" in corpus.column_names:
        pages = text_column(corpus, "text", corpus_path(dataset), corpus_ids, "", nulls=True)
        if "image" not in corpus.column_names and not any(page and page.strip() for page in pages):
            raise ValueError(
                f"{corpus_path(dataset)}: the 'text' column is empty in every row and there is no 'image' column "
                "to read instead; fill in the page texts or add the page images"
            )
    return corpus, dict(zip(query_ids, texts)), qrels
