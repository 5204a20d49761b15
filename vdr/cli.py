"""vdr-eval: score any sentence-transformers model, optionally with a reranker, on a BEIR-layout retrieval set.

    vdr-eval --model PATH --dataset DIR --output metrics.json --run-file run.trec \\
             [--reranker PATH --top-k 20 --fusion-weight 1.0] [--dims 384,128,64]

DIR holds corpus.parquet (or corpus/*.parquet: `id`, and `text` and/or `image` bytes), queries.parquet
(`id`, `text`) and qrels.tsv (`query-id corpus-id score`, graded integers allowed). Metrics come from
pytrec_eval; every dimension is scored from one encoding pass (truncate + renormalise). A text-only
model on an image-only corpus reads the pages through OCR (tesseract-ocr; results cached by image hash).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vdr.evaluation import evaluate_embedder, ir_metrics, write_trec_run
from vdr.models import load_embedder, load_reranker
from vdr.ocr import has_text, page_documents
from vdr.retrieval import fuse, rerank, reranked, to_run
from vdr.shards import load_beir, write_json


def corpus_documents(corpus, model, dataset: Path, ocr_cache: Path | None = None, ocr_workers: int | None = None) -> list:
    """The page text when the corpus has it; else the page images for a model that takes images, or
    their OCR (tesseract) for a text-only model."""
    reads_images = not has_text(corpus) and "image" in corpus.column_names and model.supports("image")
    return page_documents(corpus, "image" if reads_images else "text", dataset, ocr_cache, ocr_workers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vdr-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="sentence-transformers model folder, Hub id, or pkg:<package>/<folder>")
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path, help="metrics JSON")
    parser.add_argument("--run-file", type=Path, help="TREC run file of the final ranking")
    parser.add_argument("--reranker", help="CrossEncoder to rerank the top-k with")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--fusion-weight", type=float, default=1.0, help="reranked order: w x reranker + (1 - w) x embedder score, standardised per query; 1.0: the reranker alone")
    parser.add_argument("--dims", default="", help="comma-separated Matryoshka dimensions, e.g. 384,128,64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=None)
    parser.add_argument("--ocr-cache", type=Path, default=None, help="OCR cache folder (default $VDR_OCR_CACHE or ~/.cache/vdr/ocr)")
    parser.add_argument("--ocr-workers", type=int, default=None, help="tesseract processes side by side (default: up to 4)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fusion_weight <= 1.0:
        parser.error(f"--fusion-weight must be between 0 and 1, got {args.fusion_weight}")
    try:
        dims = [int(d) for d in args.dims.split(",") if d.strip()]
    except ValueError:
        parser.error(f"--dims must be comma-separated integers, got '{args.dims}'")

    # 1. Data and model
    corpus, queries, qrels = load_beir(args.dataset)
    model = load_embedder(args.model, args.max_seq_length, key="--model")
    corpus_ids = [str(i) for i in corpus["id"].to_pylist()]
    documents = corpus_documents(corpus, model, args.dataset, args.ocr_cache, args.ocr_workers)
    query_ids = [q for q in queries if q in qrels]
    query_texts = [queries[q] for q in query_ids]

    # 2. Retrieve, scoring every dimension from one encoding pass
    metrics, (indices, scores) = evaluate_embedder(model, query_ids, query_texts, corpus_ids, documents, qrels, dims, args.batch_size)
    run, tag = to_run(query_ids, corpus_ids, indices, scores), "retrieve"
    result = {"model": args.model, "queries": len(query_ids), "corpus": len(corpus_ids), **metrics}

    # 3. Rerank the top-k
    if args.reranker:
        cross_encoder = load_reranker(args.reranker, key="--reranker")
        started = time.perf_counter()
        rerank_scores = rerank(cross_encoder, query_texts, documents, indices[:, : args.top_k], args.batch_size)
        milliseconds = 1000 * (time.perf_counter() - started) / max(len(query_ids), 1)
        ordering = fuse(rerank_scores, scores[:, : args.top_k], args.fusion_weight)
        run, tag = reranked(query_ids, corpus_ids, indices, scores, ordering), "rerank"
        result["reranked"] = {
            **ir_metrics(run, qrels), "reranker": args.reranker, "top_k": args.top_k, "fusion_weight": args.fusion_weight, "ms_per_query": round(milliseconds, 1)
        }

    # 4. Write
    write_json(args.output, result)
    if args.run_file:
        write_trec_run(args.run_file, run, tag)
    print(f"ndcg@10 {result['ndcg@10']:.4f}" + (f", reranked {result['reranked']['ndcg@10']:.4f}" if args.reranker else ""))


if __name__ == "__main__":
    main()
