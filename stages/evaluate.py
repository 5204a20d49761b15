"""evaluate: base embedder, finetuned embedder, and finetuned embedder + reranker on the held-out set.

    python stages/evaluate.py         (run by `dvc repro evaluate`)

Pages are read as models.page_input says (vdr/data/evalset.py): the text layer (OCR for image-only pages), or
the page screenshot (then the reranker scores (query text, page image) pairs). The base embedder's
embeddings come from the embed_base stage (data/embeddings/base), so a finetuning change never re-encodes
them; the finetuned embedder encodes the corpus and the queries ONCE at full size, and every Matryoshka
dimension is scored by truncating and renormalising those embeddings. The reranker reorders the finetuned
embedder's top_k pages: `finetuned+reranker` fuses its score with the embedder's at evaluate.fusion_weight (auto:
the weight chosen on the validation split, data/pages/validation, which also decides whether the system uses the
reranker at all: vdr/evaluation/fusion.py), `finetuned+reranker_only` is its order alone. Metrics come from
pytrec_eval. Encoding runs on encode.devices (vdr/retrieval/devices.py); page embeddings larger than
search.max_memory_mb go through temporary memory-mapped files next to data/runs and are searched block by block
within that bound (vdr/retrieval/encode.py).
Writes metrics/evaluate.json (the headline rows and comparisons: `dvc metrics show`), reports/results.json (every
row, dimension and comparison; the model cards read it), metrics/ndcg_by_dim.json (`dvc plots show`),
reports/results.md (with the late-interaction rows of metrics/multivector.json when that ran) with its picture
reports/ndcg_by_dim.svg, and TREC run files in data/runs/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vdr.config.evaluation import Encode, Evaluate, Search
from vdr.config.lengths import token_limit, with_measured_lengths
from vdr.config.models import Models
from vdr.config.precision import native_bf16
from vdr.config.section import load_sections
from vdr.data.evalset import EvalSet
from vdr.errors import fields_as, fields_under
from vdr.evaluation.driver import Evaluation
from vdr.evaluation.fusion import choose_fusion_weight, validation_evaluation
from vdr.evaluation.plots import ndcg_by_dimension_svg
from vdr.evaluation.report import headline, ndcg_by_dimension, results_report, system_sentence
from vdr.evaluation.rerank import check_rerank_depth
from vdr.evaluation.significance import paired_comparisons
from vdr.io.files import atomic_path, write_json
from vdr.models.loading import load_embedder
from vdr.models.reranker import load_reranker
from vdr.retrieval.dense import DenseRetriever
from vdr.retrieval.embeddings import AS_IS, encoding_settings, load_embeddings
from vdr.retrieval.encode import Spill
from vdr.stage import PageReading, parse_args, stage_process


@dataclass(frozen=True)
class Paths(PageReading):
    params: Path = Path("params.yaml")
    dataset: Path = Path("data/pages/eval")
    validation: Path = Path("data/pages/validation")  # where evaluate.fusion_weight auto is chosen
    base_embeddings: Path = Path("data/embeddings/base")
    embedder: Path = Path("models/embedder")
    reranker: Path = Path("models/reranker")
    late_metrics: Path = Path("metrics/multivector.json")  # stages/evaluate_multivector.py; empty when it is off
    metrics: Path = Path("metrics/evaluate.json")  # the headline, for dvc metrics show / dvc exp show
    results: Path = Path("reports/results.json")  # every row, dimension and comparison (the cards read it)
    plots: Path = Path("metrics/ndcg_by_dim.json")
    report: Path = Path("reports/results.md")
    picture: Path = Path("reports/ndcg_by_dim.svg")
    runs: Path = Path("data/runs")
    lengths: Path = Path("data/pages/lengths.json")  # evaluate.max_seq_length auto (stages/generate.py measured it)


def main(paths: Paths) -> None:
    # 1. Parameters and the held-out set, read as the models read it
    params = load_sections(paths.params, models=Models, evaluate=Evaluate, encode=Encode, search=Search)
    asked_length = params.evaluate.max_seq_length
    params = with_measured_lengths(params, paths.lengths)  # auto: the limit measured on the training pages
    evaluate = params.evaluate
    evalset = EvalSet.load(paths.dataset)
    with fields_under("evaluate"):
        check_rerank_depth(evaluate.top_k, len(evalset.corpus_ids))  # before any encoding
    documents = evalset.documents(params.models.page_input, paths.ocr_cache, paths.ocr_workers, lazy=True)

    # 2. Base embedder from its embeddings (the embed_base stage), finetuned embedder in one encoding pass; both
    #    searched within search.max_memory_mb, page embeddings above it in files of the spill (vdr/retrieval/dense.py)
    evaluation = Evaluation(evalset, documents)
    with Spill(params.search.max_memory_mb, paths.runs.parent) as spill:
        base = load_embeddings(
            paths.base_embeddings, evalset.query_ids, evalset.corpus_ids, encoding_settings(params), stage="embed_base"
        )
        with fields_under("evaluate"):
            evaluation.embeddings("base", DenseRetriever(spill=spill), *base, evaluate.dims)
        as_is = paths.base_embeddings / AS_IS  # the base model at its own, longer token limit, as a user runs it
        if as_is.is_dir():
            own_length = json.loads((as_is / "info.json").read_text())["settings"]["max_seq_length"]
            settings = encoding_settings(params, max_seq_length=own_length)
            embeddings = load_embeddings(as_is, evalset.query_ids, evalset.corpus_ids, settings, stage="embed_base")
            evaluation.embeddings("base_as_is", DenseRetriever(spill=spill), *embeddings, [])
            evaluation.rows["base_as_is"]["max_seq_length"] = own_length
        with fields_as({"embedder": "models/embedder (finetuned)"}):
            model = load_embedder(str(paths.embedder), params.models, max_seq_length=evaluate.max_seq_length)
        retriever = DenseRetriever(
            model, evaluate.batch_size, devices=params.encode.devices, bf16=params.encode.bf16, spill=spill
        )
        with fields_as({"dims": "evaluate.dims", "devices": "encode.devices"}):
            evaluation.dense("finetuned", retriever, evaluate.dims)
            if evaluate.fusion_weight == "auto":  # the same retrieval of the validation split, to choose on
                validation = validation_evaluation(
                    paths.validation, params.models.page_input, paths.ocr_cache, paths.ocr_workers
                )
                validation.dense("finetuned", retriever, [])

    # 3. Rerank the finetuned embedder's top-k: the trained reranker (alone and fused), and the base one if asked.
    #    fusion_weight auto: each reranker's weight, and whether the system uses the trained one at all, are chosen
    #    on the validation split (vdr/evaluation/fusion.py), then applied once to the held-out set
    rerankers = {"finetuned+reranker": str(paths.reranker)}
    if evaluate.base_reranker:
        rerankers["finetuned+base_reranker"] = params.models.reranker
    choices = {}
    for name, reranker in rerankers.items():
        with fields_under("models"):
            cross_encoder = load_reranker(reranker, params.models)
        weight = evaluate.fusion_weight
        if weight == "auto":
            choices[name] = choose_fusion_weight(
                validation, "finetuned", cross_encoder, evaluate.top_k, evaluate.batch_size, params.encode.bf16
            )
            weight = choices[name].reranker_weight
            print(f"{name}: validation NDCG@10 by fusion weight {choices[name].ndcg_by_weight}")
        with fields_under("evaluate"):
            evaluation.rerank(
                name, cross_encoder, "finetuned", evaluate.top_k, weight, evaluate.batch_size, bf16=params.encode.bf16
            )
    choice = choices.get("finetuned+reranker")
    metrics = evaluation.rows
    for name, row in metrics.items():
        cost = f" ({row['ms_per_query']:.0f} ms/query at top {row['top_k']})" if "ms_per_query" in row else ""
        print(f"{name}: ndcg@10 {row['ndcg@10']:.4f}{cost}")

    # 4. Metrics, run files, plots, report with its picture
    precision = {"encode_bf16": params.encode.bf16, "native_bf16": native_bf16()}  # encode.bf16 as resolved
    # each row against its reference, each Matryoshka dimension against the full size
    comparisons = paired_comparisons(evaluation.runs, evalset.qrels, evaluation.dimension_runs)
    system = choice.as_metrics() if choice else {"fusion_weight": evaluate.fusion_weight, "chosen_on": "preset"}
    length = token_limit(asked_length, evaluate.max_seq_length, paths.lengths)
    extra = {"system": system, "comparisons": comparisons, "precision": precision, "token_limit": length}
    evaluation.write(paths.results, paths.runs, extra)
    write_json(paths.metrics, headline({**evaluation.results(), **extra}))
    print(system_sentence(system))
    plot_rows = ndcg_by_dimension(metrics)
    write_json(paths.plots, plot_rows)
    with atomic_path(paths.picture) as temporary:
        temporary.write_text(ndcg_by_dimension_svg(plot_rows))
    with atomic_path(paths.report) as temporary:
        late = json.loads(paths.late_metrics.read_text()) if paths.late_metrics.exists() else {}
        results = {**metrics, "held_out_set": {"queries": len(evalset.query_ids)}, **extra}
        report = results_report(results, evalset, evaluate, paths.picture.name, late)
        temporary.write_text(report)


if __name__ == "__main__":
    with stage_process("evaluate"):
        main(parse_args(Paths, __doc__))
