"""The multi-vector (late-interaction) retriever: one embedding per token, pages ranked by MaxSim.

    retriever = MultiVectorRetriever(model, batch_size, index_dtype="float16", max_memory_mb=1024, bf16=True)
    with retriever.encoding():                        # bf16 autocast on the model's device, MaxSim included
        pages = retriever.index(documents)            # a TokenIndex: every page's token vectors, encoded once
        queries = retriever.encode_queries(texts)
        indices, scores = retriever.search(queries, pages, top_k)

The retriever interface (vdr/retrieval/retriever.py) over vdr/retrieval/maxsim.py, whose numbers these are. The
model encodes in this process (no pool); the model itself is loaded by vdr/models/multivector.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from vdr.retrieval.devices import bf16_autocast
from vdr.retrieval.maxsim import TokenIndex, encode_pages, encode_queries, maxsim_search
from vdr.retrieval.search import DEFAULT_MAX_MEMORY_MB


class MultiVectorRetriever:
    """`model` (a sentence-transformers MultiVectorEncoder) encodes `batch_size` inputs at a time; page token vectors
    are stored as `index_dtype` (float16 or float32); MaxSim search keeps within `max_memory_mb`; `bf16`
    (encode.bf16): inside `encoding()`, under bf16 autocast."""

    def __init__(
        self,
        model,
        batch_size: int,
        *,
        index_dtype: str = "float16",
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
        bf16: bool = False,
    ):
        self.model = model
        self.batch_size = batch_size
        self.index_dtype = index_dtype
        self.max_memory_mb = max_memory_mb
        self.bf16 = bf16

    @contextlib.contextmanager
    def encoding(self) -> Iterator[MultiVectorRetriever]:
        """bf16 autocast on the model's device for the block (nothing when `bf16` is off)."""
        with bf16_autocast(self.model, self.bf16):
            yield self

    def encode_queries(self, texts: list[str]) -> TokenIndex:
        return encode_queries(self.model, texts, self.batch_size)

    def index(self, documents: list) -> TokenIndex:
        return encode_pages(self.model, documents, self.batch_size, self.index_dtype)

    def search(self, queries: TokenIndex, pages: TokenIndex, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        return maxsim_search(queries, pages, top_k, self.max_memory_mb)
