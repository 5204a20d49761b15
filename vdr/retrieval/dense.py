"""The dense retriever: one unit-length embedding per query and per page, exact inner-product top-k.

    with Spill(params.search.max_memory_mb, folder) as spill:
        retriever = DenseRetriever(model, batch_size, devices=params.encode.devices, bf16=params.encode.bf16,
                                   spill=spill)
        with retriever.encoding():                    # the pool over encode.devices, or bf16 autocast in one process
            queries = retriever.encode_queries(texts)
            pages = retriever.index(documents)        # np.memmap in a file of the spill when above its bound
        indices, scores = retriever.search(queries, pages, top_k)   # block by block within the same bound

The retriever interface (vdr/retrieval/retriever.py) over vdr/retrieval/encode.py (encoding, Spill, Matryoshka
truncation), vdr/retrieval/devices.py (the pool, autocast) and vdr/retrieval/search.py (the top-k); the numbers are
theirs. Outside `encoding()` the model encodes in this process on its own device, without autocast; the search
needs no pool, so it runs after the pool has stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vdr.retrieval.encode import Spill, encode_documents, encode_queries, truncate
from vdr.retrieval.pool import encoding_pool
from vdr.retrieval.search import DEFAULT_MAX_MEMORY_MB, search


class DenseRetriever:
    """`model` (a sentence-transformers embedder; None: a retriever that only searches embeddings computed earlier)
    encodes `batch_size` inputs at a time; `devices` (encode.devices, `auto` or a list; None: the model's own
    device) and `bf16` (encode.bf16) apply inside `encoding()`; `spill` bounds the page embeddings and the search
    (None: embeddings in memory, the search within DEFAULT_MAX_MEMORY_MB)."""

    def __init__(
        self, model=None, batch_size: int = 32, *, devices=None, bf16: bool = False, spill: Spill | None = None
    ):
        self.model = model
        self.batch_size = batch_size
        self.devices = devices
        self.bf16 = bf16
        self.spill = spill
        self.pool = None  # sentence-transformers' process pool while `encoding()` runs one

    @property
    def max_memory_mb(self) -> float:
        """The search's memory bound: the spill's."""
        return self.spill.max_memory_mb if self.spill is not None else DEFAULT_MAX_MEMORY_MB

    @contextlib.contextmanager
    def encoding(self) -> Iterator[DenseRetriever]:
        """The pool over `devices` (one process under bf16 autocast when there is no pool) for the block, stopped
        when it ends (vdr/retrieval/devices.py encoding_pool)."""
        with encoding_pool(self.model, self.devices, bf16=self.bf16) as pool:
            self.pool = pool
            try:
                yield self
            finally:
                self.pool = None

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return encode_queries(self.model, texts, self.batch_size, self.pool)

    def index(self, documents: list, *, out: Path | None = None, read=None) -> np.ndarray:
        """The page embeddings, one row per page, in order: above the spill's bound, a read-only np.memmap of `out`
        (a .npy path) or of a file of the spill. `read` turns a page into what the model reads (e.g. decodes an
        image), a chunk at a time when streaming."""
        return encode_documents(
            self.model, documents, self.batch_size, self.pool, spill=self.spill, out=out, read=read
        )

    def search(self, queries: np.ndarray, pages: np.ndarray, top_k: int, dim: int | None = None):
        """(indices, scores) of the top_k pages of each query, within `max_memory_mb`. `dim`: on the first `dim`
        Matryoshka dimensions of both, renormalised (the pages' through the spill's files when above its bound)."""
        if dim is not None:
            pages = truncate(pages, dim, self.spill)
            queries = truncate(queries, dim)
        return search(queries, pages, top_k, self.max_memory_mb)
