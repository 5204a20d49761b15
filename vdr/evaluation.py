"""Retrieval metrics computed with pytrec_eval (trec_eval's own code), and TREC run files.

pytrec_eval ranks a query's documents by score, breaking ties by descending document id, and uses
graded relevance gains for NDCG. Queries with no retrieved document count as zero.
"""

from __future__ import annotations

from pathlib import Path

import pytrec_eval

from vdr.shards import atomic_path
from vdr.retrieval import encode_documents, encode_queries, search, to_run, truncate

RUN_DEPTH = 100  # documents kept per query in a run; recall@100 and map@100 need them


def top(run: dict[str, dict[str, float]], k: int) -> dict[str, dict[str, float]]:
    """The k best documents of each query, ranked as trec_eval ranks them."""
    return {
        query_id: dict(sorted(documents.items(), key=lambda item: (-item[1], _reverse_key(item[0])))[:k])
        for query_id, documents in run.items()
    }


def _reverse_key(doc_id: str):
    # trec_eval breaks score ties by document id, descending
    return tuple(-ord(c) for c in doc_id) + (0,)


def ir_metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean ndcg@10, mrr@10, recall@{1,10,100} and map@100 over every query in `qrels`."""
    qrels = {q: docs for q, docs in qrels.items() if any(score > 0 for score in docs.values())}
    measures = {"ndcg_cut.10", "recall.1,10,100"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    at10 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top(run, 10))
    at100 = pytrec_eval.RelevanceEvaluator(qrels, {"map"}).evaluate(top(run, 100))

    def mean(results: dict, measure: str) -> float:
        return sum(results.get(q, {}).get(measure, 0.0) for q in qrels) / max(len(qrels), 1)

    return {
        "ndcg@10": mean(per_query, "ndcg_cut_10"),
        "mrr@10": mean(at10, "recip_rank"),
        "recall@1": mean(per_query, "recall_1"),
        "recall@10": mean(per_query, "recall_10"),
        "recall@100": mean(per_query, "recall_100"),
        "map@100": mean(at100, "map"),
    }


def write_trec_run(path: Path, run: dict[str, dict[str, float]], tag: str) -> None:
    """Standard TREC run format: qid Q0 docid rank score tag."""
    with atomic_path(path) as temporary, open(temporary, "w") as handle:
        for query_id, documents in run.items():
            ranked = sorted(documents.items(), key=lambda item: (-item[1], _reverse_key(item[0])))
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def evaluate_embedder(model, query_ids, query_texts, corpus_ids, documents, qrels, dims, batch_size):
    """Metrics at full size and at each Matryoshka dimension from ONE encoding pass, and the full-size search.

    Returns ({metric: value, ..., "dims": {dim: {metric: value}}}, (indices, scores) of the top RUN_DEPTH).
    """
    query_embeddings = encode_queries(model, query_texts, batch_size)
    document_embeddings = encode_documents(model, documents, batch_size)
    return evaluate_embeddings(query_embeddings, document_embeddings, query_ids, corpus_ids, qrels, dims)


def evaluate_embeddings(query_embeddings, document_embeddings, query_ids, corpus_ids, qrels, dims):
    """evaluate_embedder's scoring on embeddings computed earlier (full size; each dimension truncated + renormalised)."""
    full = query_embeddings.shape[1]
    too_large = [d for d in dims if d > full]
    if too_large:
        raise ValueError(f"evaluate.dims: {too_large} exceed the model's embedding size {full}")
    results, searches = {}, {}
    for dim in sorted({full, *dims}, reverse=True):
        indices, scores = search(truncate(query_embeddings, dim), truncate(document_embeddings, dim), RUN_DEPTH)
        searches[dim] = (indices, scores)
        results[str(dim)] = ir_metrics(to_run(query_ids, corpus_ids, indices, scores), qrels)
    return {**results[str(full)], "dims": results}, searches[full]
