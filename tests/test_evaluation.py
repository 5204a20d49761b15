import numpy as np
import pytest

from vdr.evaluation.metrics import ir_metrics, to_run, top, write_trec_run
from vdr.evaluation.rerank import fuse, rerank
from vdr.retrieval.encode import truncate
from vdr.retrieval.mining import mine_negatives
from vdr.retrieval.search import search


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


def test_rerank_under_bf16_scores_inside_autocast_only():
    import torch

    class AutocastProbe:
        device = torch.device("cpu")

        def predict(self, pairs, **kwargs):
            return [float(torch.is_autocast_enabled("cpu"))] * len(pairs)

    candidates = np.array([[0, 1]])
    assert rerank(AutocastProbe(), ["q"], ["a", "b"], candidates, batch_size=2, bf16=True).tolist() == [[1.0, 1.0]]
    assert rerank(AutocastProbe(), ["q"], ["a", "b"], candidates, batch_size=2).tolist() == [[0.0, 0.0]]
    assert not torch.is_autocast_enabled("cpu")


def test_trec_run_file(tmp_path):
    write_trec_run(tmp_path / "run.trec", {"q1": {"d1": 0.5, "d2": 0.9}}, "tag")
    assert (tmp_path / "run.trec").read_text().splitlines() == ["q1 Q0 d2 1 0.900000 tag", "q1 Q0 d1 2 0.500000 tag"]


def test_fusion_weight_one_is_the_reranker_and_zero_the_embedder():
    rerank_scores = np.array([[0.1, 3.0, 2.0], [5.0, 4.0, -1.0]])
    retrieval_scores = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]])
    assert fuse(rerank_scores, retrieval_scores, 1.0) is rerank_scores
    assert (np.argsort(-fuse(rerank_scores, retrieval_scores, 0.0), axis=1) == [[0, 1, 2], [0, 1, 2]]).all()
    half = fuse(rerank_scores, retrieval_scores, 0.5)
    # each side standardised per query, then averaged: query 0's reranker favourite (page 1)
    # meets the embedder's (page 0)
    assert np.argmax(half[0]) == 1 and np.argmax(half[1]) == 0
    assert np.allclose(half.mean(axis=1), 0.0)


def test_random_negatives_are_seeded_and_never_the_positive():
    generator = np.random.default_rng(0)
    pages = generator.normal(size=(40, 8))
    pages /= np.linalg.norm(pages, axis=1, keepdims=True)
    queries = pages[:10] + 0.1 * generator.normal(size=(10, 8))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    args = (queries, pages, list(range(10)), 3, 0, 20, 0.0)
    first, again, other_seed = (
        mine_negatives(*args, "random", 1),
        mine_negatives(*args, "random", 1),
        mine_negatives(*args, "random", 2),
    )
    top = mine_negatives(*args, "top")
    assert first == again and first != other_seed
    assert all(i not in negatives and len(set(negatives)) == 3 for i, negatives in enumerate(first))
    assert first != top  # a draw from ranks 0..20, not always the 3 closest
