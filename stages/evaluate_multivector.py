"""evaluate_multivector: the late-interaction (multi-vector) model before and after finetuning on the held-out set.

    python stages/evaluate_multivector.py   (run by `dvc repro evaluate_multivector`)

Two rows: `multivector_base`, models.embedder as a multi-vector model with the fresh projection train_multivector
starts from (same projection_dim, same seed: vdr/multivector.py), and `multivector_finetuned`, models/multivector.
Pages are read as models.page_input says (vdr/evalset.py: the text layer, OCR for image-only pages, or the page
screenshot). Each model encodes every page ONCE into a token index (train_multivector.index_dtype), then encodes
the queries and ranks all pages by MaxSim within search.max_memory_mb. Metrics come from pytrec_eval through
vdr/evaluation.py, as for the dense rows, plus what late interaction costs: the index's bytes per page (token
vectors and offsets), its tokens per page, and the ms per query of encoding the query and searching the index (the
pages were encoded beforehand). Writes metrics/multivector.json (`dvc metrics show`) and TREC run files in
data/runs_multivector/. With late interaction off (train_multivector.enabled: false, the cpu default) it writes an
empty metrics file and no runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vdr.evalset import EvalSet
from vdr.evaluation import RUN_DEPTH, ir_metrics, to_run, write_trec_run
from vdr.multivector import encode_pages, encode_queries, load_multivector, maxsim_search
from vdr.params import load_params
from vdr.shards import atomic_path, write_json
from vdr.stage import PageReading, parse_args, stage_process


@dataclass(frozen=True)
class Paths(PageReading):
    params: Path = Path("params.yaml")
    dataset: Path = Path("data/pages/eval")
    model: Path = Path("models/multivector")
    metrics: Path = Path("metrics/multivector.json")
    runs: Path = Path("data/runs_multivector")


def evaluate_multivector(model, evalset: EvalSet, documents, batch_size: int, index_dtype: str, max_memory_mb: float):
    """One model's row: the pages encoded once into a token index, every query encoded and searched by MaxSim, the
    top RUN_DEPTH pages of each scored with pytrec_eval. Returns (metrics row, run)."""
    pages = encode_pages(model, documents, batch_size, index_dtype)
    started = time.perf_counter()
    queries = encode_queries(model, evalset.query_texts, batch_size)
    indices, scores = maxsim_search(queries, pages, RUN_DEPTH, max_memory_mb)
    elapsed = time.perf_counter() - started
    run = to_run(evalset.query_ids, evalset.corpus_ids, indices, scores)
    row = {
        **ir_metrics(run, evalset.qrels),
        "index_bytes_per_page": round(pages.nbytes / len(pages), 1),
        "tokens_per_page": round(pages.tokens_per_item, 1),
        "token_dims": int(pages.tokens.shape[1]),
        "ms_per_query": round(1000 * elapsed / len(evalset.query_ids), 1),
    }
    return row, run


def main(paths: Paths) -> None:
    # 1. Parameters and the held-out set, read as the models read it
    params = load_params(paths.params)
    config = params.late_interaction
    if config is None:  # off in this run: empty outputs, so the report has no late-interaction rows
        print("late interaction is off (train_multivector.enabled: false): nothing to evaluate")
        write_json(paths.metrics, {})
        with atomic_path(paths.runs) as temporary:
            temporary.mkdir()
        return
    evalset = EvalSet.load(paths.dataset)
    documents = evalset.documents(params.models.page_input, paths.ocr_cache, paths.ocr_workers, lazy=True)

    # 2. The base model (the fresh projection training starts from) and the finetuned one, each scored the same way
    lengths = {"query_length": config.query_length, "document_length": config.document_length}
    models = {
        "multivector_base": (params.models.embedder, "models.embedder (as a multi-vector model)"),
        "multivector_finetuned": (str(paths.model), "models/multivector (finetuned)"),
    }
    metrics, runs = {}, {}
    for name, (source, key) in models.items():
        model = load_multivector(
            source, params.models, projection_dim=config.projection_dim, seed=config.seed, key=key, **lengths
        )
        metrics[name], runs[name] = evaluate_multivector(
            model, evalset, documents, config.encode_batch_size, config.index_dtype, params.search.max_memory_mb
        )
        row = metrics[name]
        print(
            f"{name}: ndcg@10 {row['ndcg@10']:.4f}, {row['index_bytes_per_page']:.0f} index bytes/page "
            f"({row['tokens_per_page']:.0f} tokens x {row['token_dims']} dims, {config.index_dtype}), "
            f"{row['ms_per_query']:.1f} ms/query"
        )
        del model

    # 3. Metrics and run files
    held_out = {
        "queries": len(evalset.query_ids),
        "pages": len(evalset.corpus_ids),
        "queries_not_scored": evalset.skipped,
    }
    write_json(paths.metrics, {**metrics, "held_out_set": held_out})
    with atomic_path(paths.runs) as temporary:
        temporary.mkdir()
        for name, run in runs.items():
            write_trec_run(temporary / f"{name}.trec", run, name)


if __name__ == "__main__":
    with stage_process("evaluate_multivector"):
        main(parse_args(Paths, __doc__))
