"""Reranking an embedder's top-k with a CrossEncoder, fused with the retrieval score or alone, and scored.

`rerank_and_score` is the reranking step of the evaluation driver (vdr/evaluation/driver.py), so the evaluate stages,
`vdr-eval` and the benchmarks rerank alike.
"""

from __future__ import annotations

import time

import numpy as np

from vdr.errors import FieldError
from vdr.evaluation.metrics import RUN_DEPTH, ir_metrics, to_run
from vdr.retrieval.devices import bf16_autocast
from vdr.retrieval.progress import ModelProgress


def rerank(
    cross_encoder, queries: list[str], documents: list, candidates: np.ndarray, batch_size: int, bf16: bool = False
) -> np.ndarray:
    """Cross-encoder scores for every (query, candidate document) pair; same shape as `candidates`. `bf16`: scored
    under bf16 autocast (encode.bf16).

    NaN or infinite scores (a reranker whose training diverged) stop here, before any run file or metric."""
    from vdr.models.finite import model_name, require_finite

    candidate_pages = {int(i): documents[int(i)] for i in np.unique(candidates)}  # each decoded once (Screenshots)
    pairs = [(query, candidate_pages[int(i)]) for query, row in zip(queries, candidates) for i in row]
    what = f"reranking the top {candidates.shape[1]} pages of {len(candidates):,} queries"
    with bf16_autocast(cross_encoder, bf16), ModelProgress(what, cross_encoder, len(pairs), "pair") as progress:
        with progress.counting(len(pairs)):
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


def check_rerank_depth(top_k: int, num_pages: int) -> None:
    """A reranker reorders each query's retrieved pages: at most RUN_DEPTH, and never more than the corpus holds
    (else FieldError naming `top_k`)."""
    retrieved = min(num_pages, RUN_DEPTH)
    if top_k > retrieved:
        raise FieldError(
            "top_k",
            f"{top_k} pages to rerank, but each query retrieves {retrieved} ({num_pages} pages in the "
            f"corpus, at most {RUN_DEPTH} kept per query); lower it",
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
    bf16: bool = False,
):
    """Rerank each query's top_k pages of `top` (an embedder's (indices, scores)) with the cross-encoder.

    Returns {variant: metrics} and {variant: run}: `name` is the fused order (fusion_weight), and with a
    fusion_weight below 1 also `name`_only, the reranker's order alone. Each row carries the reranking
    cost (ms per query at top_k) and its fusion weight. `bf16`: scored under bf16 autocast (encode.bf16).
    """
    indices, scores = top
    check_rerank_depth(top_k, len(evalset.corpus_ids))
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
