"""Late interaction search: one embedding per token, pages ranked by MaxSim in bounded memory.

    pages = encode_pages(model, documents, batch_size)              # a TokenIndex: every page's tokens, encoded once
    queries = encode_queries(model, query_texts, batch_size)
    indices, scores = maxsim_search(queries, pages, top_k, max_memory_mb)   # as vdr/retrieval/search.py returns them

MaxSim of a query and a page: for each query token, its best inner product with any page token, summed over the
query tokens (token vectors are unit length). Pages are encoded ONCE into a `TokenIndex`: every page's token
vectors in one 2-D array (float16 by default, float32 on demand) with each page's offsets, so the index costs its
tokens x dims x bytes plus 8 bytes per page, and `nbytes` measures it. `maxsim_search` scores every query against a
block of pages at a time (sentence-transformers' `maxsim`, float32 accumulation) and keeps a running top-k per query
with vdr/retrieval/search.py's exact merge, so memory stays within `max_memory_mb` whatever the number of pages.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vdr.models.finite import model_name, require_finite
from vdr.retrieval.progress import ModelProgress
from vdr.retrieval.search import BYTES_PER_SCORE, DEFAULT_MAX_MEMORY_MB, top_k_of_blocks

INDEX_DTYPES = ("float16", "float32")
DECODED_PAGES_PER_CHUNK = 256  # pages encoded (and screenshots decoded) at a time, as vdr/retrieval/encode.py does


NOT_FINITE_HINT = (
    "the multi-vector model's weights are probably NaN: if it is the finetuned one (models/multivector), its "
    "training diverged, so retrain it with a lower train_multivector.learning_rate or projection_learning_rate"
)


@dataclass(frozen=True)
class TokenIndex:
    """Every input's token vectors in one 2-D array: input i's are rows offsets[i]:offsets[i + 1] of `tokens`."""

    tokens: np.ndarray  # (total tokens, dims), float16 or float32
    offsets: np.ndarray  # int64, one more than the inputs

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray], dtype: str = "float32") -> TokenIndex:
        if dtype not in INDEX_DTYPES:
            raise ValueError(f"index dtype must be one of {INDEX_DTYPES}, got {dtype!r}")
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        dims = arrays[0].shape[1] if arrays else 0
        tokens = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros((0, dims), dtype=dtype)
        return cls(tokens, offsets)

    @classmethod
    def concatenate(cls, parts: list[TokenIndex]) -> TokenIndex:
        starts = np.cumsum([0] + [len(part.tokens) for part in parts[:-1]])
        offsets = np.concatenate([parts[0].offsets[:1]] + [part.offsets[1:] + s for part, s in zip(parts, starts)])
        return cls(np.concatenate([part.tokens for part in parts]), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    @property
    def nbytes(self) -> int:
        """The index's size: the token vectors and the offsets."""
        return int(self.tokens.nbytes + self.offsets.nbytes)

    @property
    def tokens_per_item(self) -> float:
        return len(self.tokens) / max(len(self), 1)


def encode_pages(model, documents, batch_size: int, dtype: str = "float16") -> TokenIndex:
    """Every page's token vectors, in order, a chunk of pages at a time (screenshots that decode when read are
    decoded a chunk at a time too); each chunk is checked for NaN and stored as `dtype` as it comes."""
    parts = []
    with ModelProgress(f"encoding {len(documents):,} pages", model, len(documents), "page") as progress:
        for start in range(0, len(documents), DECODED_PAGES_PER_CHUNK):
            chunk = documents[start : start + DECODED_PAGES_PER_CHUNK]
            with progress.counting(len(chunk)):
                arrays = model.encode_document(
                    chunk, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True
                )
            part = TokenIndex.from_arrays([np.asarray(a, dtype=np.float32) for a in arrays], dtype)
            what = f"the page token embeddings of {model_name(model)} (pages {start} to {start + len(chunk) - 1})"
            require_finite(part.tokens, what, NOT_FINITE_HINT)
            parts.append(part)
    if not parts:
        raise ValueError("no pages to encode")
    return TokenIndex.concatenate(parts)


def encode_queries(model, texts: list[str], batch_size: int) -> TokenIndex:
    """Every query's token vectors, float32."""
    with ModelProgress(f"encoding {len(texts):,} queries", model, len(texts), "query") as progress:
        with progress.counting(len(texts)):
            arrays = model.encode_query(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True)
    index = TokenIndex.from_arrays([np.asarray(a, dtype=np.float32) for a in arrays])
    require_finite(index.tokens, f"the query token embeddings of {model_name(model)}", NOT_FINITE_HINT)
    return index


SHARES = 4  # the bound is split between a block's float32 page tokens, its score block and maxsim's intermediates


def maxsim_search(
    queries: TokenIndex, pages: TokenIndex, top_k: int, max_memory_mb: float = DEFAULT_MAX_MEMORY_MB
) -> tuple[np.ndarray, np.ndarray]:
    """The top_k pages of every query by MaxSim: (indices int64 [Q, k], scores float32 [Q, k]), best first, equal
    scores to the lower page index (k = min(top_k, pages)), as vdr/retrieval/search.py search returns them.

    Pages are scored a block at a time (`page_blocks`): the block's tokens as float32, every query against them
    with sentence-transformers' `maxsim` (its own chunks within a share of the bound), then merged into the running
    top-k. Never a queries x pages x tokens tensor beyond one chunk of one block."""
    import torch
    from sentence_transformers.util.similarity import maxsim

    if len(queries) == 0 or len(pages) == 0:
        raise ValueError(f"nothing to search: {len(queries)} queries, {len(pages)} pages")
    if queries.tokens.shape[1] != pages.tokens.shape[1]:
        raise ValueError(
            f"dimension mismatch: query tokens have {queries.tokens.shape[1]} dims, page tokens "
            f"{pages.tokens.shape[1]}"
        )
    if not (isinstance(max_memory_mb, (int, float)) and 0 < max_memory_mb < math.inf):
        raise ValueError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}")
    k = min(int(top_k), len(pages))
    budget = max_memory_mb * 2**20 / SHARES
    chunk_elements = max(1, int(budget / 4 / 2))  # float32 elements; maxsim's max and sum need about as much again
    query_tokens = [torch.from_numpy(np.ascontiguousarray(queries[i], dtype=np.float32)) for i in range(len(queries))]

    def blocks() -> Iterator[tuple[int, int, np.ndarray]]:
        for start, stop in page_blocks(pages, len(queries), budget):
            block = np.asarray(pages.tokens[pages.offsets[start] : pages.offsets[stop]], dtype=np.float32)
            cuts = pages.offsets[start : stop + 1] - pages.offsets[start]
            page_tokens = [torch.from_numpy(block[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
            with torch.inference_mode():
                scores = maxsim(query_tokens, page_tokens, chunk_elements=chunk_elements)
            yield 0, start, scores.numpy().astype(np.float32, copy=False)

    return top_k_of_blocks(blocks(), len(queries), k)


def page_blocks(pages: TokenIndex, num_queries: int, budget_bytes: float) -> Iterator[tuple[int, int]]:
    """(first page, end page) of consecutive blocks: each block's float32 tokens and its score block's working set
    (num_queries x pages x BYTES_PER_SCORE) fit `budget_bytes` each; at least one page per block."""
    dims = pages.tokens.shape[1]
    max_pages = max(1, int(budget_bytes // (num_queries * BYTES_PER_SCORE)))
    max_tokens = max(1, int(budget_bytes // (dims * 4)))
    start = 0
    while start < len(pages):
        stop = start + 1
        limit = min(len(pages), start + max_pages)
        # the furthest end whose tokens fit (at least one page)
        fits = int(np.searchsorted(pages.offsets, pages.offsets[start] + max_tokens, side="right")) - 1
        stop = max(stop, min(limit, fits))
        yield start, stop
        start = stop
