"""evaluate: base embedder, finetuned embedder, and finetuned embedder + reranker on the held-out set.

    python stages/evaluate.py         (run by `dvc repro evaluate`)

Pages are read as models.page_input says: the text layer, or the page screenshot (then the reranker
scores (query text, page image) pairs). The reranker reorders the finetuned embedder's top_k pages; the
reported `finetuned+reranker` order fuses its score with the embedder's (evaluate.fusion_weight), and
`finetuned+reranker_only` is the reranker's order alone. Each model encodes the corpus and the queries ONCE at full
size; every Matryoshka dimension is scored by truncating and renormalising those embeddings. Metrics come from pytrec_eval.
Text models read image-only pages through OCR (vdr/ocr.py). The base embedder's embeddings come from
the embed_base stage (data/embeddings/base), so a finetuning change never re-encodes them.
Writes metrics/evaluate.json (`dvc metrics show`), metrics/ndcg_by_dim.json (`dvc plots show`),
reports/results.md and TREC run files in data/runs/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vdr.embeddings import encoding_settings, load_embeddings
from vdr.evaluation import evaluate_embedder, evaluate_embeddings, ir_metrics, write_trec_run
from vdr.models import load_embedder, load_reranker, loading_kwargs, require_images
from vdr.ocr import page_documents
from vdr.params import load_params
from vdr.report import ndcg_by_dimension, results_table
from vdr.retrieval import fuse, rerank, reranked, to_run
from vdr.shards import atomic_path, load_beir, write_json


def main(
    params_path: str, dataset: Path, embedder: Path, reranker: Path, metrics_path: Path, plots_path: Path, report_path: Path, runs: Path,
    base_embeddings: Path = Path("data/embeddings/base"), ocr_cache: Path | None = None, ocr_workers: int | None = None,
) -> None:
    # 1. Parameters and the held-out set
    params = load_params(params_path)
    evaluate = params.evaluate
    corpus, queries, qrels = load_beir(dataset)
    page_column = params.models.page_input
    corpus_ids = [str(i) for i in corpus["id"].to_pylist()]
    documents = page_documents(corpus, page_column, dataset, ocr_cache, ocr_workers)  # text layer, OCR or screenshots
    kwargs = loading_kwargs(params.models)
    query_ids = [q for q in queries if q in qrels]
    query_texts = [queries[q] for q in query_ids]
    print(f"{len(query_ids)} queries, {len(corpus_ids)} pages")

    # 2. Base embedder from its embeddings (the embed_base stage), finetuned embedder in one encoding pass
    metrics, top = {}, {}
    base_queries, base_corpus = load_embeddings(base_embeddings, query_ids, corpus_ids, encoding_settings(params), stage="embed_base")
    metrics["base"], top["base"] = evaluate_embeddings(base_queries, base_corpus, query_ids, corpus_ids, qrels, evaluate.dims)
    print(f"base: ndcg@10 {metrics['base']['ndcg@10']:.4f}")
    model = load_embedder(str(embedder), evaluate.max_seq_length, **kwargs)
    if page_column == "image":
        require_images(model, "models.embedder (finetuned)")
    metrics["finetuned"], top["finetuned"] = evaluate_embedder(model, query_ids, query_texts, corpus_ids, documents, qrels, evaluate.dims, evaluate.batch_size)
    print(f"finetuned: ndcg@10 {metrics['finetuned']['ndcg@10']:.4f}")

    # 3. Rerank the finetuned embedder's top-k: the trained reranker (alone and fused), and the base one if asked
    indices, scores = top["finetuned"]
    candidates = indices[:, : evaluate.top_k]
    rerankers = {"finetuned+reranker": str(reranker)} | ({"finetuned+base_reranker": params.models.reranker} if evaluate.base_reranker else {})
    reranked_runs = {}
    for name, reranker_path in rerankers.items():
        cross_encoder = load_reranker(reranker_path, **kwargs)
        started = time.perf_counter()
        rerank_scores = rerank(cross_encoder, query_texts, documents, candidates, evaluate.batch_size)
        cost = {"top_k": evaluate.top_k, "ms_per_query": round(1000 * (time.perf_counter() - started) / max(len(query_ids), 1), 1)}
        variants = {name: fuse(rerank_scores, scores[:, : evaluate.top_k], evaluate.fusion_weight)}
        if evaluate.fusion_weight < 1.0:
            variants[f"{name}_only"] = rerank_scores
        for variant, ordering in variants.items():
            reranked_runs[variant] = reranked(query_ids, corpus_ids, indices, scores, ordering)
            metrics[variant] = {**ir_metrics(reranked_runs[variant], qrels), **cost, "fusion_weight": evaluate.fusion_weight if variant == name else 1.0}
            print(f"{variant}: ndcg@10 {metrics[variant]['ndcg@10']:.4f} ({cost['ms_per_query']:.0f} ms/query at top {evaluate.top_k})")

    # 4. Metrics, plots, report, run files
    write_json(metrics_path, metrics)
    write_json(plots_path, ndcg_by_dimension(metrics))
    with atomic_path(report_path) as temporary:
        temporary.write_text(
            "# Results\n\n"
            f"Held-out set: {len(query_ids)} queries, {len(corpus_ids)} pages. Metrics: pytrec_eval, cosine similarity, "
            f"reranker over the finetuned embedder's top {evaluate.top_k}, its score fused with the embedder's at weight "
            f"{evaluate.fusion_weight} (`_only`: the reranker's order alone).\n\n" + results_table(metrics)
        )
    with atomic_path(runs) as temporary:
        temporary.mkdir()
        for name in ("base", "finetuned"):
            write_trec_run(temporary / f"{name}.trec", to_run(query_ids, corpus_ids, *top[name]), name)
        for name, run in reranked_runs.items():
            write_trec_run(temporary / f"{name}.trec", run, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", type=Path, default=Path("data/pages/eval"))
    parser.add_argument("--embedder", type=Path, default=Path("models/embedder"))
    parser.add_argument("--reranker", type=Path, default=Path("models/reranker"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    parser.add_argument("--plots", type=Path, default=Path("metrics/ndcg_by_dim.json"))
    parser.add_argument("--report", type=Path, default=Path("reports/results.md"))
    parser.add_argument("--runs", type=Path, default=Path("data/runs"))
    parser.add_argument("--base-embeddings", type=Path, default=Path("data/embeddings/base"))
    parser.add_argument("--ocr-cache", type=Path, default=None, help="OCR cache folder (default $VDR_OCR_CACHE or ~/.cache/vdr/ocr)")
    parser.add_argument("--ocr-workers", type=int, default=None, help="tesseract processes side by side (default: up to 4)")
    args = parser.parse_args()
    main(args.params, args.dataset, args.embedder, args.reranker, args.metrics, args.plots, args.report, args.runs, args.base_embeddings, args.ocr_cache, args.ocr_workers)
