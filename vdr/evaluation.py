"""Retrieval metrics computed with pytrec_eval (trec_eval's own code), TREC run files, and reranking.

Scoring an embedder: `evaluate_embedder` (one encoding pass, every Matryoshka dimension). Scoring a
reranker over an embedder's top-k: `rerank_and_score`, which the evaluate stage and `vdr-eval` share.

pytrec_eval ranks a query's documents by score, breaking ties by descending document id, and uses
graded relevance gains for NDCG. Queries with no retrieved document count as zero.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytrec_eval

from vdr.devices import bf16_autocast, encoding_pool
from vdr.retrieval import Spill, encode_documents, encode_queries, truncate
from vdr.search import DEFAULT_MAX_MEMORY_MB, search
from vdr.shards import atomic_path, write_json

RUN_DEPTH = 100  # documents kept per query in a run; recall@100 and map@100 need them


def to_run(
    query_ids: list[str], document_ids: list[str], indices: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    return {
        query_id: {document_ids[i]: float(s) for i, s in zip(row_indices, row_scores)}
        for query_id, row_indices, row_scores in zip(query_ids, indices, scores)
    }


def rerank(
    cross_encoder, queries: list[str], documents: list, candidates: np.ndarray, batch_size: int, bf16: bool = False
) -> np.ndarray:
    """Cross-encoder scores for every (query, candidate document) pair; same shape as `candidates`. `bf16`: scored
    under bf16 autocast (encode.bf16).

    NaN or infinite scores (a reranker whose training diverged) stop here, before any run file or metric."""
    from vdr.finite import model_name, require_finite

    candidate_pages = {int(i): documents[int(i)] for i in np.unique(candidates)}  # each decoded once (Screenshots)
    pairs = [(query, candidate_pages[int(i)]) for query, row in zip(queries, candidates) for i in row]
    with bf16_autocast(cross_encoder, bf16):
        scores = cross_encoder.predict(pairs, batch_size=batch_size, show_progress_bar=True, convert_to_numpy=True)
    hint = (
        "it was probably trained with a diverging learning rate: retrain it with a lower "
        "train_reranker.learning_rate (or, if models.model_kwargs.dtype is float16, it overflowed)"
    )
    what = f"the scores of the reranker {model_name(cross_encoder)}"
    scores = require_finite(np.asarray(scores, dtype=np.float64), what, hint)
    return scores.reshape(candidates.shape)


def fuse(rerank_scores: np.ndarray, retrieval_scores: np.ndarray, weight: float) -> np.ndarray:
    """weight x reranker score + (1 - weight) x retrieval score, each standardised (z-score) over a query's top-k.

    weight 1.0 returns the reranker's scores unchanged: its order alone."""
    if weight == 1.0:
        return rerank_scores

    def standardised(x: np.ndarray) -> np.ndarray:
        return (x - x.mean(axis=1, keepdims=True)) / np.maximum(x.std(axis=1, keepdims=True), 1e-6)

    return weight * standardised(rerank_scores) + (1 - weight) * standardised(retrieval_scores.astype(np.float64))


def reranked(query_ids, document_ids, indices, scores, rerank_scores: np.ndarray) -> dict[str, dict[str, float]]:
    """A run where each query's first k documents are ordered by `rerank_scores` and the rest keep the retrieval order.

    Reranker scores are shifted above every retrieval score, so reranked documents stay on top.
    """
    top_k = rerank_scores.shape[1]
    offset = float(np.max(scores)) - float(np.min(rerank_scores)) + 1.0
    run = to_run(query_ids, document_ids, indices, scores)
    for query_id, row, row_scores in zip(query_ids, indices[:, :top_k], rerank_scores):
        for i, score in zip(row, row_scores):
            run[query_id][document_ids[i]] = float(score) + offset
    return run


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
    """Standard TREC run format: qid Q0 docid rank score tag. Its columns are separated by whitespace, so an id
    (or tag) that is empty or holds whitespace is a ValueError naming it and the file, never a garbled line."""
    names = [("tag", tag)]
    for query_id, documents in run.items():
        names += [("query id", query_id)] + [("doc id", doc_id) for doc_id in documents]
    for what, value in names:
        if not str(value) or any(character.isspace() for character in str(value)):
            raise ValueError(
                f"{path}: {what} {value!r} is empty or contains whitespace, which a TREC run file cannot hold "
                "(whitespace separates its columns); rename it in the dataset, e.g. with '_' for each space"
            )
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        for query_id, documents in run.items():
            ranked = sorted(documents.items(), key=lambda item: (-item[1], _reverse_key(item[0])))
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def write_results(metrics_path: Path, runs_path: Path, metrics: dict, runs: dict, evalset) -> None:
    """A stage's results: `metrics` with the held-out set's counts (every query not scored is counted) as JSON, and
    one TREC run file per row in the folder `runs_path`, each written atomically."""
    held_out = {
        "queries": len(evalset.query_ids),
        "pages": len(evalset.corpus_ids),
        "queries_not_scored": evalset.skipped,
    }
    write_json(metrics_path, {**metrics, "held_out_set": held_out})
    with atomic_path(runs_path) as temporary:
        temporary.mkdir()
        for name, run in runs.items():
            write_trec_run(temporary / f"{name}.trec", run, name)


def evaluate_embedder(
    model,
    evalset,
    documents: list,
    dims: list[int],
    batch_size: int,
    dims_key: str = "evaluate.dims",
    devices=None,
    spill: Spill | None = None,
    bf16: bool = False,
):
    """Metrics at full size and at each Matryoshka dimension from ONE encoding pass, and the full-size search.

    `documents`: evalset.documents(page_input), what the model reads of each page. `devices`: encode.devices
    (`auto` or a list; None: the model's own device), one pool for queries and pages (vdr/devices.py), under bf16
    autocast when `bf16` (encode.bf16). `spill`:
    page embeddings above its memory bound stream through a memory-mapped file, and search keeps to that bound.
    Returns ({metric: value, ..., "dims": {dim: {metric: value}}}, (indices, scores) of the top RUN_DEPTH).
    """
    with encoding_pool(model, devices, bf16=bf16) as pool:
        query_embeddings = encode_queries(model, evalset.query_texts, batch_size, pool)
        document_embeddings = encode_documents(model, documents, batch_size, pool, spill=spill)
    return evaluate_embeddings(query_embeddings, document_embeddings, evalset, dims, dims_key, spill)


def evaluate_embeddings(
    query_embeddings,
    document_embeddings,
    evalset,
    dims: list[int],
    dims_key: str = "evaluate.dims",
    spill: Spill | None = None,
):
    """evaluate_embedder's scoring on embeddings computed earlier (full size; each dimension truncated and
    renormalised, through `spill`'s files when above its bound, and searched within its bound)."""
    full = query_embeddings.shape[1]
    too_large = [d for d in dims if d > full]
    if too_large:
        raise ValueError(f"{dims_key}: {too_large} exceed the model's embedding size {full}; lower them")
    max_memory_mb = spill.max_memory_mb if spill is not None else DEFAULT_MAX_MEMORY_MB
    results, searches = {}, {}
    for dim in sorted({full, *dims}, reverse=True):
        pages = truncate(document_embeddings, dim, spill)
        indices, scores = search(truncate(query_embeddings, dim), pages, RUN_DEPTH, max_memory_mb)
        del pages  # a memory-mapped file is replaced by the next dimension's
        searches[dim] = (indices, scores)
        results[str(dim)] = ir_metrics(to_run(evalset.query_ids, evalset.corpus_ids, indices, scores), evalset.qrels)
    return {**results[str(full)], "dims": results}, searches[full]


def check_rerank_depth(top_k: int, num_pages: int, key: str) -> None:
    """A reranker reorders each query's retrieved pages: at most RUN_DEPTH, and never more than the corpus holds."""
    retrieved = min(num_pages, RUN_DEPTH)
    if top_k > retrieved:
        raise ValueError(
            f"{key}: {top_k} pages to rerank, but each query retrieves {retrieved} ({num_pages} pages in the "
            f"corpus, at most {RUN_DEPTH} kept per query); lower it"
        )


def rerank_and_score(
    cross_encoder,
    evalset,
    documents: list,
    top: tuple,
    top_k: int,
    fusion_weight: float,
    batch_size: int,
    name: str,
    key: str = "evaluate.top_k",
    bf16: bool = False,
):
    """Rerank each query's top_k pages of `top` (an embedder's (indices, scores)) with the cross-encoder.

    Returns {variant: metrics} and {variant: run}: `name` is the fused order (fusion_weight), and with a
    fusion_weight below 1 also `name`_only, the reranker's order alone. Each row carries the reranking
    cost (ms per query at top_k) and its fusion weight. `bf16`: scored under bf16 autocast (encode.bf16).
    """
    indices, scores = top
    check_rerank_depth(top_k, len(evalset.corpus_ids), key)
    started = time.perf_counter()
    rerank_scores = rerank(cross_encoder, evalset.query_texts, documents, indices[:, :top_k], batch_size, bf16)
    cost = {
        "top_k": top_k,
        "ms_per_query": round(1000 * (time.perf_counter() - started) / max(len(evalset.query_ids), 1), 1),
    }
    orderings = {name: (fuse(rerank_scores, scores[:, :top_k], fusion_weight), fusion_weight)}
    if fusion_weight < 1.0:
        orderings[f"{name}_only"] = (rerank_scores, 1.0)
    metrics, runs = {}, {}
    for variant, (ordering, weight) in orderings.items():
        runs[variant] = reranked(evalset.query_ids, evalset.corpus_ids, indices, scores, ordering)
        metrics[variant] = {**ir_metrics(runs[variant], evalset.qrels), **cost, "fusion_weight": weight}
    return metrics, runs
