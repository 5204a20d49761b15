"""Scoring a dense embedder: one encoding pass, every Matryoshka dimension (truncated, renormalised)."""

from __future__ import annotations

from vdr.evaluation.metrics import RUN_DEPTH, ir_metrics, to_run
from vdr.retrieval.devices import encoding_pool
from vdr.retrieval.encode import Spill, encode_documents, encode_queries, truncate
from vdr.retrieval.search import DEFAULT_MAX_MEMORY_MB, search


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
    (`auto` or a list; None: the model's own device), one pool for queries and pages (vdr/retrieval/devices.py), under
    bf16 autocast when `bf16` (encode.bf16). `spill`:
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
