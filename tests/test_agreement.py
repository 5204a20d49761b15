"""Our pytrec_eval metrics agree with sentence-transformers' InformationRetrievalEvaluator on the same embeddings.

With binary relevance and no tied scores both tools rank identically, so NDCG@10, MRR@10 and
Recall@k must agree to 1e-6. (With ties they differ by design: trec_eval breaks ties by descending
document id, the sentence-transformers evaluator by ascending corpus position.)
"""

import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.util import cos_sim

from vdr.evaluation.metrics import ir_metrics, to_run
from vdr.retrieval.encode import truncate
from vdr.retrieval.search import search


class FixedEmbeddings:
    """Stands in for a model: returns precomputed embeddings for known texts."""

    def __init__(self, table):
        self.table = table

    def encode_query(self, texts, **kwargs):
        return self._encode(texts, kwargs)

    def encode_document(self, texts, **kwargs):
        return self._encode(texts, kwargs)

    def _encode(self, texts, kwargs):
        vectors = np.stack([self.table[t] for t in texts])
        return torch.tensor(vectors) if kwargs.get("convert_to_tensor") else vectors


def test_pytrec_eval_agrees_with_the_sentence_transformers_evaluator():
    rng = np.random.default_rng(0)
    queries = {f"q{i}": f"query {i}" for i in range(40)}
    corpus = {f"d{i}": f"page {i}" for i in range(200)}
    relevant = {f"q{i}": {f"d{i}", f"d{i + 100}"} if i % 3 == 0 else {f"d{i}"} for i in range(40)}
    table = {
        text: v
        for text, v in zip(list(queries.values()) + list(corpus.values()), truncate(rng.normal(size=(240, 32)), 32))
    }
    # pull each query towards its first relevant page, so the metrics are far from 0 and 1
    for i in range(40):
        table[f"query {i}"] = truncate((table[f"query {i}"] + 0.6 * table[f"page {i}"])[None], 32)[0]

    evaluator = InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        name="t",
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1],
        precision_recall_at_k=[1, 10],
        map_at_k=[100],
        show_progress_bar=False,
        score_functions={"cosine": cos_sim},
    )
    theirs = evaluator.compute_metrices(FixedEmbeddings(table))["cosine"]

    query_ids, corpus_ids = list(queries), list(corpus)
    q = np.stack([table[queries[i]] for i in query_ids])
    d = np.stack([table[corpus[i]] for i in corpus_ids])
    indices, scores = search(q, d, 100)
    run = to_run(query_ids, corpus_ids, indices, scores)
    assert all(len(set(np.round(row, 9))) == len(row) for row in scores), "the test needs untied scores"
    ours = ir_metrics(run, {query: {doc: 1 for doc in docs} for query, docs in relevant.items()})

    assert 0.2 < ours["ndcg@10"] < 0.95  # neither trivial nor perfect
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg@k"][10], abs=1e-6)
    assert ours["mrr@10"] == pytest.approx(theirs["mrr@k"][10], abs=1e-6)
    assert ours["recall@10"] == pytest.approx(theirs["recall@k"][10], abs=1e-6)
    assert ours["recall@1"] == pytest.approx(theirs["recall@k"][1], abs=1e-6)
