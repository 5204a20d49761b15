"""Encode once (unit-length embeddings), truncate Matryoshka dimensions; vdr/retrieval/search.py searches them.

Embeddings must be finite: a NaN one (a diverged finetuning, a float16 overflow) stops the stage
(vdr/models/finite.py).

Encoding runs in this process, or in a pool of worker processes over several devices (`pool=`, from
vdr/retrieval/devices.py encoding_pool): the same embeddings, in the same order, to float tolerance.

Page embeddings in bounded memory (`spill=`, a Spill): when the page embeddings (rows x dims x 4 bytes) would
exceed `search.max_memory_mb`, they are encoded a chunk of pages at a time into a .npy file and returned as a
read-only memory map, which vdr/retrieval/search.py reads block by block; `truncate` writes each Matryoshka dimension
of such a matrix the same way. The files live in a temporary folder that the Spill removes when its block ends (or
at a path the caller names, such as a stage's output written to a temporary path and renamed). Below the bound
nothing changes: one encoding call, arrays in memory.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from vdr.models.finite import model_name, require_finite
from vdr.retrieval.progress import ModelProgress

NOT_FINITE_HINT = (
    "the embedder's weights are probably NaN: if it is the finetuned one (models/embedder), its training "
    "diverged, so retrain it with a lower train_embedder.learning_rate; with models.model_kwargs.dtype float16 "
    "it may have overflowed"
)


BYTES_PER_VALUE = 4  # float32


CHUNK_SHARE = 4  # a chunk of embeddings being encoded takes at most 1/CHUNK_SHARE of the bound (room for copies)


class Spill:
    """A memory bound for page embeddings, and where the ones above it go: .npy files in a temporary folder made on
    first use inside `folder` (default: the system's temporary folder), removed with its files when the `with`
    block ends, on an error too.

        with Spill(params.search.max_memory_mb, paths.output.parent) as spill:
            pages = encode_documents(model, documents, batch_size, pool, spill=spill)   # np.memmap when too large
    """

    def __init__(self, max_memory_mb: float, folder: str | Path | None = None):
        if not (isinstance(max_memory_mb, (int, float)) and 0 < max_memory_mb < float("inf")):
            raise ValueError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}")
        self.max_memory_mb = max_memory_mb
        self.parent = Path(folder) if folder is not None else None
        self.folder: Path | None = None

    def fits(self, rows: int, dim: int) -> bool:
        """Whether rows x dim float32 values fit the bound."""
        return rows * dim * BYTES_PER_VALUE <= self.max_memory_mb * 2**20

    def rows_per_chunk(self, dim: int, batch_size: int, workers: int = 1) -> int:
        """Rows to encode or truncate at a time: a share of the bound, in whole batches, at least one per worker."""
        rows = int(self.max_memory_mb * 2**20 / CHUNK_SHARE) // (dim * BYTES_PER_VALUE)
        return max(batch_size * workers, rows // batch_size * batch_size)

    def file(self, name: str) -> Path:
        """A fresh path for a .npy file in the temporary folder (an older file of that name is unlinked first: a
        memory map of it stays readable until dropped)."""
        if self.folder is None:
            if self.parent is not None:
                self.parent.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=".vdr-embeddings-", dir=self.parent))
        path = self.folder / name
        path.unlink(missing_ok=True)
        return path

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exception) -> None:
        self.close()


def encode_queries(model, texts: list[str], batch_size: int, pool=None) -> np.ndarray:
    with ModelProgress(f"encoding {len(texts):,} queries", model, len(texts), "query") as progress:
        with progress.counting(len(texts)):
            embeddings = model.encode_query(
                texts, batch_size=batch_size, **encode_options(pool, len(texts), batch_size)
            )
    return require_finite(embeddings, f"the query embeddings of {model_name(model)}", NOT_FINITE_HINT)


def encode_documents(
    model,
    documents: list,
    batch_size: int,
    pool=None,
    *,
    spill: Spill | None = None,
    out: Path | None = None,
    read=None,
) -> np.ndarray:
    """Unit-length page embeddings, one row per page, in order.

    `read`, if given, turns a page into what the model reads (e.g. decodes an image), a chunk at a time when
    streaming. With `spill`, embeddings above its bound are encoded a chunk at a time into `out` (a .npy path) or
    a file of the spill, and returned as a read-only np.memmap; each chunk is checked for NaN as it comes."""
    what = f"the page embeddings of {model_name(model)}"
    with ModelProgress(f"encoding {len(documents):,} pages", model, len(documents), "page") as progress:
        if getattr(documents, "decoded_on_read", False):  # screenshots decoded a chunk at a time (vdr/data/evalset.py)
            return _encode_chunks(model, documents, batch_size, pool, spill, out, what, progress)
        dim = embedding_dimension(model) if spill is not None else None
        if dim is None or spill.fits(len(documents), dim):
            inputs = documents if read is None else [read(page) for page in documents]
            embeddings = _encode_pages(model, inputs, batch_size, pool, progress)
            return require_finite(embeddings, what, NOT_FINITE_HINT)

        path = Path(out) if out is not None else spill.file("pages.npy")
        workers = len(pool["processes"]) if pool is not None else 1
        step = spill.rows_per_chunk(dim, batch_size, workers)
        matrix = None
        for start in range(0, len(documents), step):
            chunk = documents[start : start + step]
            inputs = chunk if read is None else [read(page) for page in chunk]
            embeddings = _encode_pages(model, inputs, batch_size, pool, progress)
            rows = f"{what} (pages {start} to {start + len(chunk) - 1} of {len(documents)})"
            require_finite(embeddings, rows, NOT_FINITE_HINT)
            if matrix is None:  # the width the model really returns
                shape = (len(documents), embeddings.shape[1])
                matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
            matrix[start : start + len(chunk)] = embeddings
    matrix.flush()
    del matrix
    return np.load(path, mmap_mode="r")


def _encode_pages(model, inputs: list, batch_size: int, pool, progress: ModelProgress) -> np.ndarray:
    """One encode_document call, moving `progress` as its batches (or a pool's chunks) finish."""
    with progress.counting(len(inputs)):
        return model.encode_document(inputs, batch_size=batch_size, **encode_options(pool, len(inputs), batch_size))


DECODED_PAGES_PER_CHUNK = 256  # decoded screenshots held at once: about 0.7 GB of letter pages at 100 dpi


def _encode_chunks(
    model, documents, batch_size: int, pool, spill: Spill | None, out: Path | None, what: str, progress: ModelProgress
):
    """Pages that decode when read, a chunk (whole batches) at a time: the embeddings in memory, or with `spill`
    above its bound in a .npy memmap (`out` or a file of the spill), as encode_documents returns them."""
    workers = len(pool["processes"]) if pool is not None else 1
    step = max(batch_size * workers, DECODED_PAGES_PER_CHUNK // batch_size * batch_size)
    dim = embedding_dimension(model)
    if spill is not None and dim is not None and not spill.fits(len(documents), dim):
        step = min(step, spill.rows_per_chunk(dim, batch_size, workers))
        path = Path(out) if out is not None else spill.file("pages.npy")
    else:
        path = None
    parts, matrix = [], None
    for start in range(0, len(documents), step):
        chunk = documents[start : start + step]
        embeddings = _encode_pages(model, chunk, batch_size, pool, progress)
        require_finite(
            embeddings, f"{what} (pages {start} to {start + len(chunk) - 1} of {len(documents)})", NOT_FINITE_HINT
        )
        if path is None:
            parts.append(embeddings)
            continue
        if matrix is None:
            matrix = np.lib.format.open_memmap(
                path, mode="w+", dtype=np.float32, shape=(len(documents), embeddings.shape[1])
            )
        matrix[start : start + len(chunk)] = embeddings
    if path is None:
        return np.concatenate(parts) if parts else np.zeros((0, dim or 0), dtype=np.float32)
    matrix.flush()
    del matrix
    return np.load(path, mmap_mode="r")


def encode_options(pool, count: int, batch_size: int) -> dict:
    """encode_query / encode_document options; with a pool, chunks of at least one batch (the library's default,
    count / workers / 10, would give a GPU batches of a few inputs on a small set or a streamed chunk). The library's
    progress bar moves ours (vdr/retrieval/progress.py)."""
    options = {"normalize_embeddings": True, "convert_to_numpy": True, "show_progress_bar": True}
    if pool is not None:
        options["pool"] = pool
        options["chunk_size"] = max(batch_size, min(math.ceil(count / len(pool["processes"]) / 10), 5000))
    return options


def embedding_dimension(model) -> int | None:
    """The width of the model's embeddings, when the model says (None: unknown, so kept in memory)."""
    method = getattr(model, "get_embedding_dimension", None)
    dim = method() if callable(method) else None
    return int(dim) if dim else None


def truncate(embeddings: np.ndarray, dim: int, spill: Spill | None = None) -> np.ndarray:
    """Keep the first `dim` Matryoshka dimensions and renormalise to unit length.

    Row by row, so a chunk gives the same bits as the whole: with `spill`, a result above its bound is written a
    chunk of rows at a time to a .npy file of the spill and returned as a read-only np.memmap (the file of the
    previous call is replaced)."""
    if dim > embeddings.shape[1]:
        raise ValueError(f"dimension {dim} is larger than the model's embedding size {embeddings.shape[1]}")
    rows = embeddings.shape[0]
    if spill is None or spill.fits(rows, dim):
        return truncated_rows(embeddings, dim)
    path = spill.file("pages_truncated.npy")
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    step = spill.rows_per_chunk(embeddings.shape[1], 1)
    for start in range(0, rows, step):
        matrix[start : start + step] = truncated_rows(embeddings[start : start + step], dim)
    matrix.flush()
    del matrix
    return np.load(path, mmap_mode="r")


def truncated_rows(embeddings: np.ndarray, dim: int) -> np.ndarray:
    head = embeddings[:, :dim].astype(np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return head / np.maximum(norms, 1e-12)
