import numpy as np
import pytest

from vdr.evaluation import ir_metrics, top, write_trec_run
from vdr.retrieval import rerank, search, to_run, truncate


def test_perfect_and_known_rankings():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    perfect = ir_metrics({"q1": {"d1": 0.9, "d2": 0.1}, "q2": {"d2": 0.9, "d1": 0.1}}, qrels)
    assert perfect["ndcg@10"] == pytest.approx(1.0) and perfect["mrr@10"] == pytest.approx(1.0)
    second = ir_metrics({"q1": {"d1": 0.5, "d2": 0.9}, "q2": {"d2": 0.5, "d1": 0.9}}, qrels)
    assert second["mrr@10"] == pytest.approx(0.5)
    assert second["ndcg@10"] == pytest.approx(1 / np.log2(3))
    assert second["recall@1"] == 0.0 and second["recall@10"] == 1.0


def test_mrr_is_cut_at_ten_and_missing_queries_count_zero():
    run = {"q1": {f"d{i}": 1.0 - i / 100 for i in range(20)}}
    qrels = {"q1": {"d15": 1}, "q2": {"d1": 1}}
    metrics = ir_metrics(run, qrels)
    assert metrics["mrr@10"] == 0.0
    assert metrics["recall@100"] == pytest.approx(0.5)  # q2 retrieved nothing


def test_top_breaks_ties_like_trec_eval():
    assert list(top({"q": {"a": 1.0, "b": 1.0, "ab": 1.0}}, 3)["q"]) == ["b", "ab", "a"]


def test_truncate_renormalises():
    embeddings = np.array([[3.0, 4.0, 12.0]])
    truncated = truncate(embeddings, 2)
    assert truncated.shape == (1, 2) and np.allclose(truncated, [[0.6, 0.8]])
    with pytest.raises(ValueError, match="larger than"):
        truncate(embeddings, 4)


def test_search_orders_by_score_then_index():
    queries = np.array([[1.0, 0.0]])
    documents = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    indices, scores = search(queries, documents, 3)
    assert indices.tolist() == [[1, 2, 0]] and scores[0, 0] == pytest.approx(1.0)
    assert to_run(["q"], ["a", "b", "c"], indices, scores) == {"q": {"b": 1.0, "c": 1.0, "a": 0.0}}


def test_rerank_scores_every_candidate_and_keeps_every_query():
    class LengthScorer:
        def predict(self, pairs, **kwargs):
            return [len(document) for _, document in pairs]

    candidates = np.array([[0, 1], [2, 0]])
    scores = rerank(LengthScorer(), ["q1", "q2"], ["a", "bbb", "cc"], candidates, batch_size=2)
    assert scores.tolist() == [[1, 3], [2, 1]]


def test_trec_run_file(tmp_path):
    write_trec_run(tmp_path / "run.trec", {"q1": {"d1": 0.5, "d2": 0.9}}, "tag")
    assert (tmp_path / "run.trec").read_text().splitlines() == ["q1 Q0 d2 1 0.900000 tag", "q1 Q0 d1 2 0.500000 tag"]
