"""embed_base: the base embedder's embeddings of the held-out queries and pages, computed once.

    python stages/embed_base.py       (run by `dvc repro embed_base`)

Finetuning never changes the base model, so its encoding of the held-out set is a stage of its own:
DVC reruns it only when the base model, how pages are read (models.page_input, model_kwargs,
processor_kwargs) or evaluate's encoding parameters (max_seq_length, batch_size) change, and the
evaluate stage scores the base embedder from these embeddings instead of encoding the corpus again.
Pages are read as models.page_input says: the text layer (OCR for image-only pages) or the screenshot.
Writes data/embeddings/base: queries.npy and corpus.npy (full size) and info.json (ids and settings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vdr.embeddings import encoding_settings, save_embeddings
from vdr.models import load_embedder, loading_kwargs, require_images
from vdr.ocr import page_documents
from vdr.params import load_params
from vdr.retrieval import encode_documents, encode_queries
from vdr.shards import load_beir


def main(params_path: str, dataset: Path, output: Path, ocr_cache: Path | None, ocr_workers: int | None) -> None:
    # 1. Parameters and the held-out set, read as the evaluate stage reads it
    params = load_params(params_path)
    evaluate = params.evaluate
    corpus, queries, qrels = load_beir(dataset)
    corpus_ids = [str(i) for i in corpus["id"].to_pylist()]
    documents = page_documents(corpus, params.models.page_input, dataset, ocr_cache, ocr_workers)
    query_ids = [q for q in queries if q in qrels]
    print(f"{len(query_ids)} queries, {len(corpus_ids)} pages")

    # 2. The base embedder, one encoding pass at full size
    model = load_embedder(params.models.embedder, evaluate.max_seq_length, **loading_kwargs(params.models))
    if params.models.page_input == "image":
        require_images(model, "models.embedder (base)")
    query_embeddings = encode_queries(model, [queries[q] for q in query_ids], evaluate.batch_size)
    corpus_embeddings = encode_documents(model, documents, evaluate.batch_size)

    # 3. The embeddings, with the ids and settings they belong to
    save_embeddings(output, query_embeddings, corpus_embeddings, query_ids, corpus_ids, encoding_settings(params))
    print(f"wrote {output}: {query_embeddings.shape[0]} queries and {corpus_embeddings.shape[0]} pages x {corpus_embeddings.shape[1]} dims")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", type=Path, default=Path("data/pages/eval"))
    parser.add_argument("--output", type=Path, default=Path("data/embeddings/base"))
    parser.add_argument("--ocr-cache", type=Path, default=None, help="OCR cache folder (default $VDR_OCR_CACHE or ~/.cache/vdr/ocr)")
    parser.add_argument("--ocr-workers", type=int, default=None, help="tesseract processes side by side (default: up to 4)")
    args = parser.parse_args()
    main(args.params, args.dataset, args.output, args.ocr_cache, args.ocr_workers)
