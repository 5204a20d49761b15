"""vdr.retrieval.search.search against the full-matrix lexsort search it replaces.

Most data here are quantised to a power-of-two grid so that every float32 product and partial sum is exact: then
the scores have the same bits however the BLAS tiles, threads or blocks the product, and the blocked search must
match the full-matrix oracle bit for bit, ties included. Continuous data are checked up to near ties (a few ulp),
which is all the full matrix itself guarantees across thread counts and batch shapes (see the module docstring).
"""

from __future__ import annotations

import numpy as np
import pytest

from vdr.retrieval.search import DEFAULT_MAX_MEMORY_MB, block_shape, search, sortable_keys, top_k_of_blocks

TINY_MB = 2e-4  # ~210 bytes: 8 score entries per block, e.g. 2 x 4
SMALL_MB = 0.01  # 436 entries per block


def reference_search(query_embeddings: np.ndarray, document_embeddings: np.ndarray, top_k: int):
    """the search as it was: the whole score matrix, every row lexsorted."""
    scores = query_embeddings @ document_embeddings.T
    top_k = min(top_k, scores.shape[1])
    order = np.stack([np.lexsort((np.arange(row.size), -row))[:top_k] for row in scores])
    return order, np.take_along_axis(scores, order, axis=1)


def quantised(rng: np.random.Generator, rows: int, dim: int, levels: int = 4) -> np.ndarray:
    """Rows of small multiples of 1/16: products and sums of a few hundred of them are exact in float32, and scores
    tie often."""
    return (rng.integers(-levels, levels + 1, size=(rows, dim)) / 16).astype(np.float32)


def assert_identical(actual, expected) -> None:
    (indices, scores), (expected_indices, expected_scores) = actual, expected
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    assert indices.shape == expected_indices.shape and scores.shape == expected_scores.shape
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(scores.view(np.uint32), expected_scores.view(np.uint32))


def ties_data(seed: int = 0, queries: int = 37, documents: int = 211, dim: int = 24):
    """Quantised queries and pages with many exact ties: coarse values, duplicate pages, an all-zero page."""
    rng = np.random.default_rng(seed)
    q = quantised(rng, queries, dim, levels=2)
    d = quantised(rng, documents, dim, levels=1)
    d[rng.choice(documents, documents // 3)] = d[rng.choice(documents, documents // 3)]  # duplicate rows
    d[documents // 2] = 0.0
    return q, d


@pytest.mark.parametrize("max_memory_mb", [TINY_MB, SMALL_MB, 0.05, DEFAULT_MAX_MEMORY_MB])
@pytest.mark.parametrize("top_k", [1, 3, 10, 64, 211, 500])
def test_matches_reference_with_many_ties(max_memory_mb, top_k):
    q, d = ties_data()
    expected = reference_search(q, d, top_k)
    assert top_k < 10 or (np.diff(expected[1], axis=1) == 0).sum() > 100, "the data should hold many exact ties"
    assert_identical(search(q, d, top_k, max_memory_mb=max_memory_mb), expected)


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_on_exact_random_data(seed):
    rng = np.random.default_rng(seed)
    q, d = quantised(rng, int(rng.integers(1, 60)), 48), quantised(rng, int(rng.integers(1, 400)), 48)
    top_k = int(rng.integers(1, 120))
    expected = reference_search(q, d, top_k)
    for max_memory_mb in (TINY_MB, SMALL_MB, 1.0):
        assert_identical(search(q, d, top_k, max_memory_mb=max_memory_mb), expected)


def test_single_query_and_k_equal_or_above_documents():
    q, d = ties_data(seed=1, queries=1, documents=50)
    for top_k in (49, 50, 51, 1000):
        expected = reference_search(q, d, top_k)
        assert expected[0].shape == (1, min(top_k, 50))
        assert_identical(search(q, d, top_k, max_memory_mb=TINY_MB), expected)


def test_single_document():
    q, d = ties_data(seed=2, queries=5, documents=1)
    assert_identical(search(q, d, 10, max_memory_mb=TINY_MB), reference_search(q, d, 10))


def test_all_scores_equal_go_to_lower_indices():
    q = np.ones((3, 4), dtype=np.float32)
    d = np.ones((100, 4), dtype=np.float32)
    indices, scores = search(q, d, 7, max_memory_mb=TINY_MB)
    np.testing.assert_array_equal(indices, np.tile(np.arange(7), (3, 1)))
    assert (scores == 4.0).all()


def test_memmap_inputs(tmp_path):
    q, d = ties_data(seed=3, queries=20, documents=300)
    q_file = np.memmap(tmp_path / "q.f32", dtype=np.float32, mode="w+", shape=q.shape)
    d_file = np.memmap(tmp_path / "d.f32", dtype=np.float32, mode="w+", shape=d.shape)
    q_file[:], d_file[:] = q, d
    q_file.flush(), d_file.flush()
    q_read = np.memmap(tmp_path / "q.f32", dtype=np.float32, mode="r", shape=q.shape)
    d_read = np.memmap(tmp_path / "d.f32", dtype=np.float32, mode="r", shape=d.shape)
    assert_identical(search(q_read, d_read, 25, max_memory_mb=SMALL_MB), reference_search(q, d, 25))


def test_other_dtypes_are_cast_to_float32():
    q, d = ties_data(seed=4)
    expected = reference_search(q, d, 9)
    assert_identical(search(q.astype(np.float64), d.astype(np.float16), 9, max_memory_mb=SMALL_MB), expected)
    assert_identical(search(q.tolist(), d, 9), expected)


def test_continuous_data_agrees_up_to_near_ties():
    """Unit vectors with continuous values: block and full products may round an entry differently by an ulp, so
    compare the score at each rank and require every returned page to score (exactly, in float64) within a few
    ulp of the reference's page at that rank."""
    rng = np.random.default_rng(5)
    q = rng.standard_normal((40, 64)).astype(np.float32)
    d = rng.standard_normal((900, 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    expected_indices, expected_scores = reference_search(q, d, 50)
    for max_memory_mb in (SMALL_MB, 0.1, DEFAULT_MAX_MEMORY_MB):
        indices, scores = search(q, d, 50, max_memory_mb=max_memory_mb)
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-6)
        exact = np.einsum("qd,qkd->qk", q.astype(np.float64), d.astype(np.float64)[indices])
        np.testing.assert_allclose(exact, expected_scores, rtol=0, atol=1e-6)
        assert (indices == expected_indices).mean() > 0.99
        assert len({tuple(row) for row in indices}) == len(q) and all(len(set(row)) == 50 for row in indices)


def test_deterministic():
    rng = np.random.default_rng(6)
    q, d = rng.standard_normal((30, 32)).astype(np.float32), rng.standard_normal((500, 32)).astype(np.float32)
    first = search(q, d, 20, max_memory_mb=SMALL_MB)
    assert_identical(search(q, d, 20, max_memory_mb=SMALL_MB), first)


def reference_top_k(scores: np.ndarray, top_k: int):
    """The reference's selection alone, on a given score matrix."""
    order = np.stack([np.lexsort((np.arange(row.size), -row))[:top_k] for row in scores])
    return order, np.take_along_axis(scores, order, axis=1)


def blocks_of(scores: np.ndarray, block_rows: int, block_columns: int):
    """A score matrix cut into blocks in the order `search` computes them: columns outer, rows inner."""
    for d0 in range(0, scores.shape[1], block_columns):
        for q0 in range(0, scores.shape[0], block_rows):
            yield q0, d0, np.ascontiguousarray(scores[q0 : q0 + block_rows, d0 : d0 + block_columns])


@pytest.mark.parametrize(("block_rows", "block_columns"), [(1, 1), (2, 3), (7, 16), (40, 64), (13, 150), (40, 1000)])
@pytest.mark.parametrize("top_k", [1, 5, 30, 300])
def test_selection_on_given_scores_matches_lexsort(block_rows, block_columns, top_k):
    """The running top-k on arbitrary float32 scores, continuous ones included, with NaN (sorted last by numpy),
    +-inf, -0.0 next to 0.0, and runs of exact ties."""
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((40, 300)).astype(np.float32)
    scores[:, 100:160] = np.round(scores[:, 100:160])  # ties
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, np.nan], dtype=np.float32)
    scores[rng.integers(0, 40, 200), rng.integers(0, 300, 200)] = rng.choice(special, 200)
    scores[3] = np.nan
    scores[4] = -0.0
    scores[4, ::2] = 0.0
    k = min(top_k, scores.shape[1])
    actual = top_k_of_blocks(blocks_of(scores, block_rows, block_columns), scores.shape[0], k)
    assert_identical(actual, reference_top_k(scores, top_k))


def test_sortable_keys_order_matches_lexsort():
    values = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 0.5, 0.5, np.nan], np.float32)
    indices = np.arange(values.size, dtype=np.uint64)
    expected = np.lexsort((np.arange(values.size), -values))
    np.testing.assert_array_equal(np.argsort(sortable_keys(values, indices)), expected)


def test_block_shape_arithmetic():
    assert block_shape(50_000, 500_000, 1024) == (6688, 6689)
    assert block_shape(4096, 500_000, 1024) == (4096, 10922)
    assert block_shape(1, 500_000, 1024) == (1, 500_000)
    assert block_shape(3, 5, 1e-9) == (1, 1)
    queries, documents = block_shape(50_000, 500_000, 64)
    assert queries * documents * 24 <= 64 * 2**20


@pytest.mark.parametrize(
    ("q", "d", "top_k", "message"),
    [
        (np.zeros((2, 3)), np.zeros((4, 5)), 1, "dimension mismatch"),
        (np.zeros((2, 3)), np.zeros((4, 3)), 0, "top_k must be an integer >= 1"),
        (np.zeros((2, 3)), np.zeros((4, 3)), 2.5, "top_k must be an integer >= 1"),
        (np.zeros((0, 3)), np.zeros((4, 3)), 1, "query_embeddings is empty"),
        (np.zeros((2, 3)), np.zeros((0, 3)), 1, "document_embeddings is empty"),
        (np.zeros(3), np.zeros((4, 3)), 1, "query_embeddings must be 2-D"),
        (np.zeros((2, 3)), np.array([["a", "b", "c"]]), 1, "document_embeddings must hold real numbers"),
    ],
)
def test_invalid_inputs(q, d, top_k, message):
    with pytest.raises(ValueError, match=message):
        search(q, d, top_k)


def test_non_finite_rows_are_counted_per_array():
    q, d = np.zeros((5, 3), np.float32), np.zeros((40, 3), np.float32)
    d[[3, 17, 30], 1] = [np.nan, np.inf, -np.inf]
    with pytest.raises(ValueError, match=r"document_embeddings has 3 of 40 rows with NaN or inf .* first at row 3"):
        search(q, d, 2, max_memory_mb=TINY_MB)
    q[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"query_embeddings has 1 of 5 rows"):
        search(q, d, 2)
    with pytest.raises(ValueError, match=r"query_embeddings has 1 of 1 rows .*float32"):
        search(np.full((1, 3), 1e300), d[:1], 1)


def test_invalid_memory_bound():
    with pytest.raises(ValueError, match="max_memory_mb"):
        search(np.zeros((2, 3)), np.zeros((4, 3)), 1, max_memory_mb=0)


# Page embeddings streamed to disk (vdr/retrieval/encode.py Spill): the memmap is read block by block with the same
# block shapes as an array in memory, so the result is the same bit for bit, on continuous data too.


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_over_a_streamed_memmap_equals_the_search_in_memory(tmp_path):
    from vdr.retrieval.encode import Spill, truncate

    rng = np.random.default_rng(11)
    q, d = unit_rows(rng, 23, 32), unit_rows(rng, 517, 32)
    d[100:110] = d[5]  # exact ties across blocks: the lower page index first
    np.lib.format.open_memmap(tmp_path / "pages.npy", mode="w+", dtype=np.float32, shape=d.shape)[:] = d
    pages = np.load(tmp_path / "pages.npy", mmap_mode="r")
    for max_memory_mb in (TINY_MB, SMALL_MB):
        assert_identical(search(q, pages, 40, max_memory_mb), search(q, d, 40, max_memory_mb))
    # every Matryoshka dimension streamed through a spill file: the same rows bit for bit, so the same search
    with Spill(SMALL_MB, tmp_path / "spill") as spill:
        for dim in (32, 16, 8):
            streamed = truncate(pages, dim, spill)
            assert isinstance(streamed, np.memmap)
            np.testing.assert_array_equal(streamed, truncate(d, dim))
            assert_identical(
                search(q[:, :dim], streamed, 25, TINY_MB), search(q[:, :dim], truncate(d, dim), 25, TINY_MB)
            )
        assert len(list(spill.folder.iterdir())) == 1  # each dimension replaces the last one's file
    assert not (tmp_path / "spill").exists() or not list((tmp_path / "spill").iterdir())


def test_streamed_mining_equals_mining_in_memory(tmp_path):
    from vdr.retrieval.mining import mine_negatives

    rng = np.random.default_rng(12)
    q, d = unit_rows(rng, 30, 16), unit_rows(rng, 300, 16)
    np.lib.format.open_memmap(tmp_path / "pages.npy", mode="w+", dtype=np.float32, shape=d.shape)[:] = d
    pages = np.load(tmp_path / "pages.npy", mmap_mode="r")
    args = (list(range(30)), 3, 0, 30, 0.05)
    for strategy in ("top", "random"):
        streamed = mine_negatives(q, pages, *args, strategy, 7, max_memory_mb=TINY_MB)
        assert streamed == mine_negatives(q, d, *args, strategy, 7, max_memory_mb=TINY_MB)
