"""Scoring a late-interaction model on a held-out set: its rows, the index's bytes per page and ms per query."""

from __future__ import annotations

import time

from vdr.retrieval.maxsim import encode_pages, encode_queries, maxsim_search


def evaluate_multivector(model, evalset, documents, batch_size: int, index_dtype: str, max_memory_mb: float):
    """The pages encoded once into a token index, every query encoded and searched by MaxSim, the top RUN_DEPTH pages
    of each scored with pytrec_eval. Returns (metrics with what the index costs: bytes and tokens per page, token
    dims, ms per query of encoding the query and searching; (indices, scores) of the top RUN_DEPTH)."""
    from vdr.evaluation.metrics import RUN_DEPTH, ir_metrics, to_run

    pages = encode_pages(model, documents, batch_size, index_dtype)
    started = time.perf_counter()
    queries = encode_queries(model, evalset.query_texts, batch_size)
    indices, scores = maxsim_search(queries, pages, RUN_DEPTH, max_memory_mb)
    elapsed = time.perf_counter() - started
    metrics = {
        **ir_metrics(to_run(evalset.query_ids, evalset.corpus_ids, indices, scores), evalset.qrels),
        "index_bytes_per_page": round(pages.nbytes / len(pages), 1),
        "tokens_per_page": round(pages.tokens_per_item, 1),
        "token_dims": int(pages.tokens.shape[1]),
        "ms_per_query": round(1000 * elapsed / max(len(evalset.query_ids), 1), 1),
    }
    return metrics, (indices, scores)
