"""The evaluation driver (vdr/evaluation/driver.py) over the dense retriever (vdr/retrieval/dense.py): the numbers of
the search and the metrics it is built on, rows in order, then the held-out set's counts."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from vdr.errors import fields_under
from vdr.evaluation.driver import Evaluation
from vdr.evaluation.metrics import ir_metrics, to_run
from vdr.retrieval.dense import DenseRetriever
from vdr.retrieval.encode import Spill, truncate
from vdr.retrieval.search import search


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def embedded():
    rng = np.random.default_rng(0)
    pages = unit(rng.normal(size=(30, 16)))
    queries = unit(pages[:5] + 0.5 * rng.normal(size=(5, 16)))
    evalset = SimpleNamespace(
        query_ids=[f"q{i}" for i in range(5)],
        corpus_ids=[f"p{i}" for i in range(30)],
        qrels={f"q{i}": {f"p{i}": 1} for i in range(5)},
        skipped={"queries_without_qrels": 1, "queries_without_relevant_page": 0},
    )
    return evalset, queries, pages


def test_every_dimension_is_the_search_of_the_truncated_embeddings(embedded):
    evalset, queries, pages = embedded
    row = Evaluation(evalset, []).embeddings("base", DenseRetriever(), queries, pages, [8, 4])
    assert list(row["dims"]) == ["16", "8", "4"] and {k: row[k] for k in row if k != "dims"} == row["dims"]["16"]
    for dim in (16, 8, 4):
        top = search(truncate(queries, dim), truncate(pages, dim), 100)
        assert row["dims"][str(dim)] == ir_metrics(to_run(evalset.query_ids, evalset.corpus_ids, *top), evalset.qrels)
    with pytest.raises(ValueError, match=r"^evaluate.dims: \[32\] exceed the model's embedding size 16; lower them$"):
        with fields_under("evaluate"):
            Evaluation(evalset, []).embeddings("base", DenseRetriever(), queries, pages, [32])


def test_pages_above_the_spill_bound_give_the_same_rows(embedded, tmp_path):
    evalset, queries, pages = embedded
    in_memory = Evaluation(evalset, []).embeddings("base", DenseRetriever(), queries, pages, [8])
    with Spill(0.0005, tmp_path) as spill:  # 30 pages x 16 dims x 4 bytes: above 512 bytes, truncated into files
        spilled = Evaluation(evalset, []).embeddings("base", DenseRetriever(spill=spill), queries, pages, [8])
        assert spill.folder is not None and [p.name for p in spill.folder.iterdir()] == ["pages_truncated.npy"]
    assert spilled == in_memory


def test_the_results_are_rows_in_order_then_the_held_out_set(embedded, tmp_path):
    evalset, queries, pages = embedded
    evaluation = Evaluation(evalset, [])
    evaluation.embeddings("base", DenseRetriever(), queries, pages, [])
    evaluation.embeddings("other", DenseRetriever(), queries[::-1].copy(), pages, [])
    evaluation.write(tmp_path / "metrics.json", tmp_path / "runs")
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == evaluation.results() and list(written) == ["base", "other", "held_out_set"]
    assert written["held_out_set"] == {"queries": 5, "pages": 30, "queries_not_scored": evalset.skipped}
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["base.trec", "other.trec"]
    assert set(evaluation.tops) == {"base", "other"} and evaluation.tops["base"][0].shape == (5, 30)
