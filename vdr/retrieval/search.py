"""Exact top-k inner-product search in bounded memory (the mining rule on top: vdr/retrieval/mining.py).

`search` scores block by block and keeps a running top-k per query. A full query x page score matrix sorted
row by row would need O(Q x D) memory and O(Q x D log D) time (50,000 queries x 500,000 pages: 100 GB for the
matrix alone). `search` returns the same ranking, best first with equal scores going to the lower page index,
while holding at most one block of scores at a time.

How the ranking is kept exact
    Every (score, page index) pair becomes one unsigned 64-bit key whose ascending order is the ranking order:
    the high 32 bits are the float32 score's bits mapped so that a higher score gives a smaller number (-0.0 and
    0.0 map alike, every NaN maps last, as in a numpy sort), the low 32 bits are the page index. Keys are unique,
    so a partition or sort on keys has no ties left to break arbitrarily: the k smallest keys are exactly the
    first k entries of a full (-score, index) lexsort.

Why scores can differ in the last bit from the full matrix
    Scores are float32 `query_block @ page_block.T`, the same BLAS sgemm as `query_embeddings @
    document_embeddings.T`, but an optimised BLAS (OpenBLAS here) rounds an entry differently depending on which
    kernel tile and thread computed it, which depends on the matrix shapes and the thread count. So a block's score
    can be one or a few ulp away from the same entry of the full product. The full product is no more canonical:
    it changes the same way with the number of BLAS threads and with which other queries are in the batch. Where
    the arithmetic is exact (e.g. embeddings quantised to a power-of-two grid) every way gives the same bits and
    this function matches the full-matrix search bit for bit; otherwise rankings agree except between pages whose
    scores are within a few ulp (near ties), and for fixed inputs, memory bound and thread count the result is
    deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

DEFAULT_MAX_MEMORY_MB = 1024


"""Working memory allowed for score blocks and their temporaries, in MiB (2**20 bytes)."""


BYTES_PER_SCORE = 24


"""Peak working bytes per entry of a score block, with room to spare: the float32 score (4) and, at worst, when the
whole block is ranked by key, a float32 copy (4), the uint64 keys (8) and boolean masks (2). The usual path needs
less: the score, a boolean mask (1) and candidate lists capped at 3 bytes per entry (`update_top_k`)."""


SENTINEL_KEY = np.uint64(np.iinfo(np.uint64).max)


"""Key of an empty slot in a running top-k: worse than every real key, NaN scores included."""


MAX_DOCUMENTS = 2**32 - 1


"""Page indices must fit the low 32 bits of a key, below the sentinel's."""


def search(
    query_embeddings: np.ndarray,
    document_embeddings: np.ndarray,
    top_k: int,
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
) -> tuple[np.ndarray, np.ndarray]:
    """Inner-product (cosine for unit vectors) top-k per query: (indices int64 [Q, k], scores float32 [Q, k]).

    Best first; equal scores go to the lower document index first; k = min(top_k, number of documents). Inputs may
    be any 2-D real arrays, np.memmap included: they are read one block of rows at a time and cast to float32 per
    block, never loaded or copied whole.

    Memory: score blocks are `block_queries x block_documents` float32 entries, sized by `block_shape` so that
    their working set (`BYTES_PER_SCORE` bytes per entry) stays within `max_memory_mb` MiB. Not counted: the
    inputs themselves, the float32 copy of one block of rows where an input is not float32 already, and the
    running top-k of every query (Q x k x 12 bytes, the size of the result).

    Steps, for each block of documents (read once, in order) and each block of queries:
      1. scores = float32 query block @ document block.T;
      2. candidates: once k documents have been seen, the entries scoring at least the query's current k-th best
         (a later document loses a tie, so in practice only strictly better ones); before that, the entries scoring
         at least the block's own k-th best; a block with no candidate costs just the comparison;
      3. merge the candidates' keys with the running top-k, keep the k smallest keys, sorted.
    A block whose candidates are too many (long runs of ties) is ranked whole by key instead: same result.
    """
    # 1. Validate: shapes, top_k, memory bound, finite values (one bounded pass over each input)
    query_embeddings = as_matrix(query_embeddings, "query_embeddings")
    document_embeddings = as_matrix(document_embeddings, "document_embeddings")
    num_queries, dim = query_embeddings.shape
    num_documents = document_embeddings.shape[0]
    if document_embeddings.shape[1] != dim:
        raise ValueError(
            f"dimension mismatch: query_embeddings has {dim} columns, document_embeddings has "
            f"{document_embeddings.shape[1]}"
        )
    if num_documents > MAX_DOCUMENTS:
        raise ValueError(f"at most {MAX_DOCUMENTS} documents are supported, got {num_documents}")
    if isinstance(top_k, (bool, np.bool_)) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not (isinstance(max_memory_mb, (int, float, np.integer, np.floating)) and 0 < max_memory_mb < math.inf):
        raise ValueError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}")
    rows_per_chunk = max(1, int(max_memory_mb * 2**20) // (dim * 4 * 2))
    check_finite(query_embeddings, "query_embeddings", rows_per_chunk)
    check_finite(document_embeddings, "document_embeddings", rows_per_chunk)

    # 2. Block sizes from the memory bound
    k = min(int(top_k), num_documents)
    block_queries, block_documents = block_shape(num_queries, num_documents, max_memory_mb)

    # 3. Stream the score blocks through a running top-k per query
    blocks = score_blocks(query_embeddings, document_embeddings, block_queries, block_documents)
    return top_k_of_blocks(blocks, num_queries, k)


def score_blocks(
    query_embeddings: np.ndarray, document_embeddings: np.ndarray, block_queries: int, block_documents: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(first query, first document, float32 scores) for every block: documents outer, so each document block is
    read (and cast) once, queries inner. One score buffer is reused, so a block is valid until the next one."""
    num_queries, num_documents = query_embeddings.shape[0], document_embeddings.shape[0]
    buffer = np.empty(min(num_queries, block_queries) * min(num_documents, block_documents), dtype=np.float32)
    for d0 in range(0, num_documents, block_documents):
        documents = as_float32(document_embeddings[d0 : d0 + block_documents])
        for q0 in range(0, num_queries, block_queries):
            queries = as_float32(query_embeddings[q0 : q0 + block_queries])
            block = buffer[: len(queries) * len(documents)].reshape(len(queries), len(documents))
            np.matmul(queries, documents.T, out=block)
            yield q0, d0, block


def top_k_of_blocks(
    blocks: Iterable[tuple[int, int, np.ndarray]], num_queries: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 [Q, k], scores float32 [Q, k]) of the best k entries per row over score blocks given as
    (first row, first column, float32 block), in (-score, column) order.

    Each row's blocks must come in column order from column 0 without gaps (a block starting at column >= k is
    taken to find k entries already kept), and cover at least k columns in all."""
    keys = np.full((num_queries, k), SENTINEL_KEY, dtype=np.uint64)
    scores = np.full((num_queries, k), np.nan, dtype=np.float32)
    for q0, d0, block in blocks:
        rows = slice(q0, q0 + len(block))
        keys[rows], scores[rows] = update_top_k(keys[rows], scores[rows], block, d0, d0 >= k)
    # Keys are sorted best first: the column index is their low 32 bits
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64), scores


def block_shape(num_queries: int, num_documents: int, max_memory_mb: float) -> tuple[int, int]:
    """(queries, documents) per score block so that the block's working set fits `max_memory_mb` MiB.

    entries = max_memory_mb x 2**20 / BYTES_PER_SCORE (1024 MiB -> 44,739,242 entries, a 4,096 x 10,922 block,
    or 6,688 x 6,689 when both inputs are large). Query blocks take up to sqrt(entries) rows, and document blocks
    take what the bound leaves, so a small query set gets wide document blocks (fewer, larger sgemm calls). Each
    side is at least 1 and at most its input's size.
    """
    entries = max(1, int(max_memory_mb * 2**20 / BYTES_PER_SCORE))
    block_queries = max(1, min(num_queries, math.isqrt(entries)))
    block_documents = max(1, min(num_documents, entries // block_queries))
    return block_queries, block_documents


def update_top_k(
    keys: np.ndarray, scores: np.ndarray, block: np.ndarray, first_index: int, full: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The running top-k (keys, scores, each [rows, k], sorted) updated with one score block for documents
    first_index, first_index + 1, ...; `full` says every row already holds k real entries."""
    k = keys.shape[1]
    width = block.shape[1]
    threshold = entry_threshold(scores, block, k, full)
    if threshold is not None:
        mask = block >= threshold[:, None]
        total = np.count_nonzero(mask)
        if total == 0:
            return keys, scores
        # Candidate lists cost 24 bytes each (flat index, row, column): allowed up to one per 8 entries on average
        if total <= len(block) * (width // 8):
            rows, columns = np.divmod(np.flatnonzero(mask), width)  # several times faster than a 2-D np.nonzero
            del mask
            counts = np.bincount(rows, minlength=len(block))
            if counts.max() <= max(k, width // 8):
                return merge_candidates(keys, scores, block, first_index, rows, columns, counts)
    # Too many candidates (long runs of ties, narrow blocks) or no usable threshold: rank the whole block by key
    new_keys, new_scores = best_of_block(block, first_index, k)
    return merge(keys, scores, new_keys, new_scores, k)


def entry_threshold(scores: np.ndarray, block: np.ndarray, k: int, full: bool) -> np.ndarray | None:
    """Per row, a float32 score that every block entry able to enter the top-k reaches, or None.

    Once the top-k is full: its worst score (an equal score from a later document loses the tie, so `>=` admits a
    few needless candidates, never misses one); -inf where that worst score is NaN (any number beats NaN). Before:
    the block's own k-th best score, as no entry below it can be among the k best of the block alone; None if the
    block is narrower than k or holds NaN among its k largest (numpy's partition ranks NaN highest, the ranking
    lowest, so the k-th value would be wrong)."""
    if full:
        worst = scores[:, -1]
        return np.where(np.isnan(worst), np.float32(-np.inf), worst)
    width = block.shape[1]
    if width < k:
        return None
    largest = np.partition(block, width - k, axis=1)[:, width - k :]
    if np.isnan(largest).any():
        return None
    return largest[:, 0]


def best_of_block(block: np.ndarray, first_index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys and scores of each row's k best entries of a score block (all of them if the block is narrower)."""
    keys = sortable_keys(block, first_index + np.arange(block.shape[1], dtype=np.uint64))
    if block.shape[1] > k:
        keys.partition(k - 1, axis=1)
        keys = keys[:, :k]
    columns = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64) - first_index
    return keys, np.take_along_axis(block, columns, axis=1)


def merge_candidates(
    keys: np.ndarray,
    scores: np.ndarray,
    block: np.ndarray,
    first_index: int,
    rows: np.ndarray,
    columns: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge a few candidate entries (row-major `rows`, `columns` of `block`) into the rows that have any."""
    # 1. Pack each active row's candidates left-aligned into [active, widest] arrays, padded with sentinels
    active = np.flatnonzero(counts)
    slot_of_row = np.zeros(len(block), dtype=np.int64)
    slot_of_row[active] = np.arange(active.size)
    starts = np.cumsum(counts) - counts
    positions = np.arange(rows.size) - starts[rows]
    values = block[rows, columns]
    new_keys = np.full((active.size, int(counts.max())), SENTINEL_KEY, dtype=np.uint64)
    new_scores = np.full(new_keys.shape, np.nan, dtype=np.float32)
    new_keys[slot_of_row[rows], positions] = sortable_keys(values, columns.astype(np.uint64) + np.uint64(first_index))
    new_scores[slot_of_row[rows], positions] = values
    # 2. Merge them into those rows only
    keys, scores = keys.copy(), scores.copy()
    keys[active], scores[active] = merge(keys[active], scores[active], new_keys, new_scores, keys.shape[1])
    return keys, scores


def merge(
    keys: np.ndarray, scores: np.ndarray, new_keys: np.ndarray, new_scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest keys per row of both sets, sorted, with their scores."""
    all_keys = np.concatenate([keys, new_keys], axis=1)
    order = np.argsort(all_keys, axis=1)[:, :k]
    return np.take_along_axis(all_keys, order, axis=1), np.take_along_axis(
        np.concatenate([scores, new_scores], axis=1), order, axis=1
    )


def sortable_keys(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is (score descending, index ascending), for float32 `scores`.

    High 32 bits: the score's bits with -0.0 made 0.0, mapped so that higher scores give smaller numbers (positive
    floats: 0x7FFFFFFF - bits; negative floats: their bits, already growing as the value falls); NaN: 0xFFFFFFFF,
    after -inf, as numpy sorts NaN last. Low 32 bits: the index (broadcast against `scores`).
    """
    bits = (scores + np.float32(0.0)).view(np.uint32)  # a new array; x + 0.0 turns -0.0 into 0.0
    np.subtract(np.uint32(0x7FFFFFFF), bits, out=bits, where=bits < np.uint32(0x80000000))
    nan = np.isnan(scores)
    if nan.any():
        bits[nan] = np.uint32(0xFFFFFFFF)
    keys = bits.astype(np.uint64)
    del bits
    keys <<= np.uint64(32)
    keys |= indices
    return keys


def as_matrix(embeddings, name: str) -> np.ndarray:
    """A 2-D, non-empty array of real numbers; np.ndarray (np.memmap included) is kept as is, not copied."""
    if not isinstance(embeddings, np.ndarray):
        embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x dimensions), got shape {embeddings.shape}")
    if 0 in embeddings.shape:
        raise ValueError(f"{name} is empty: shape {embeddings.shape}")
    if not (np.issubdtype(embeddings.dtype, np.floating) or np.issubdtype(embeddings.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {embeddings.dtype}")
    return embeddings


def as_float32(rows: np.ndarray) -> np.ndarray:
    """A block of rows as float32 (no copy when it already is)."""
    return np.asarray(rows, dtype=np.float32)


def check_finite(embeddings: np.ndarray, name: str, rows_per_chunk: int) -> None:
    """Raise ValueError naming `name` and counting its rows with NaN or inf (after the float32 cast), chunk by
    chunk so that a memmap is streamed, not loaded."""
    bad_rows, first_bad = 0, None
    for start in range(0, embeddings.shape[0], rows_per_chunk):
        with np.errstate(over="ignore"):  # a float64 value beyond float32's range becomes inf: reported below
            chunk = as_float32(embeddings[start : start + rows_per_chunk])
        bad = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
        if bad.size and first_bad is None:
            first_bad = start + int(bad[0])
        bad_rows += bad.size
    if bad_rows:
        raise ValueError(
            f"{name} has {bad_rows} of {embeddings.shape[0]} rows with NaN or inf values (after casting to "
            f"float32), first at row {first_bad}"
        )
