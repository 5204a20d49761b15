"""The retriever interface: encode queries, index pages, search the top-k in bounded memory.

    with retriever.encoding():                        # where and how the model encodes, for the block
        queries = retriever.encode_queries(texts)
        pages = retriever.index(documents)            # every page encoded once
    indices, scores = retriever.search(queries, pages, top_k)

`search` returns (indices int64 [Q, k], scores float32 [Q, k]): best first, equal scores to the lower page index,
k = min(top_k, pages), within the retriever's memory bound whatever the number of pages. Two implementations, each
in its own module so that a stage imports only the one it uses:

    vdr/retrieval/dense.py         DenseRetriever: one unit-length embedding per query and page (vdr/retrieval/
                                   encode.py), a pool over encode.devices, pages above the Spill's bound on disk,
                                   exact inner-product top-k (vdr/retrieval/search.py), Matryoshka dimensions
    vdr/retrieval/multivector.py   MultiVectorRetriever: every token's embedding, pages in a TokenIndex, MaxSim
                                   top-k (vdr/retrieval/maxsim.py)

The evaluation driver (vdr/evaluation/driver.py) scores either; mine, generate and embed_base use the dense one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np


class Retriever(Protocol):
    def encoding(self) -> AbstractContextManager:
        """The block in which the model encodes (a pool of processes, bf16 autocast), ended whatever ends it."""

    def encode_queries(self, texts: list[str]): ...

    def index(self, documents: list): ...

    def search(self, queries, pages, top_k: int) -> tuple[np.ndarray, np.ndarray]: ...
