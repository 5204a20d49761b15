"""evaluate_multivector: the late-interaction (multi-vector) model before and after finetuning on the held-out set.

    python stages/evaluate_multivector.py   (run by `dvc repro evaluate_multivector`)

Rows: `multivector_base`, models.embedder as a multi-vector model with the fresh projection train_multivector
starts from (same projection_dim, same seed: vdr/models/multivector.py), `multivector_finetuned`, models/multivector,
and `multivector_finetuned+reranker` (`_only`): the finetuned reranker (models/reranker) over the finetuned
multi-vector model's top evaluate.top_k, fused at evaluate.fusion_weight (auto: the weight chosen on the validation
split, data/pages/validation, for this retrieval: vdr/evaluation/fusion.py) and alone, exactly as evaluate reranks
the dense embedder's. Pages are read as models.page_input says (vdr/data/evalset.py: the text layer, OCR for
image-only pages, or the page screenshot). Each model encodes every page ONCE into a token index
(train_multivector.index_dtype), then encodes the queries and ranks all pages by MaxSim within search.max_memory_mb;
encoding and reranking run under bf16 autocast with encode.bf16. Metrics come from pytrec_eval through
vdr/evaluation/driver.py, as for the dense rows, plus what late interaction costs: the index's bytes per page (token
vectors and offsets), its tokens per page, and the ms per query of encoding the query and searching the index (the
pages were encoded beforehand). Writes metrics/multivector.json (`dvc metrics show`) and TREC run files in
data/runs_multivector/. With late interaction off (train_multivector.enabled: false, the cpu default) it writes an
empty metrics file and no runs (a README.md in data/runs_multivector says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.config.evaluation import Encode, Evaluate, Search
from vdr.config.models import Models
from vdr.config.section import load_sections
from vdr.config.training import TrainMultivector
from vdr.data.evalset import EvalSet
from vdr.errors import fields_as, fields_under
from vdr.evaluation.driver import Evaluation
from vdr.evaluation.fusion import choose_fusion_weight, validation_evaluation
from vdr.io.files import atomic_path, write_json
from vdr.models.multivector import load_multivector
from vdr.models.reranker import load_reranker
from vdr.retrieval.multivector import MultiVectorRetriever
from vdr.stage import PageReading, parse_args, stage_process


@dataclass(frozen=True)
class Paths(PageReading):
    params: Path = Path("params.yaml")
    dataset: Path = Path("data/pages/eval")
    validation: Path = Path("data/pages/validation")  # evaluate.fusion_weight auto is chosen there
    model: Path = Path("models/multivector")
    reranker: Path = Path("models/reranker")
    metrics: Path = Path("metrics/multivector.json")
    runs: Path = Path("data/runs_multivector")


def main(paths: Paths) -> None:
    # 1. Parameters and the held-out set, read as the models read it
    params = load_sections(
        paths.params,
        models=Models,
        train_multivector=TrainMultivector | None,
        evaluate=Evaluate,
        encode=Encode,
        search=Search,
    )
    config = params.late_interaction
    if config is None:  # off in this run: no metrics and no run files, so the report has no late-interaction rows
        print("late interaction is off (train_multivector.enabled: false): nothing to evaluate")
        write_json(paths.metrics, {})
        with atomic_path(paths.runs) as temporary:
            temporary.mkdir()
            (temporary / "README.md").write_text(
                "No run files: late interaction is off in this run (train_multivector.enabled: false); "
                "`dvc exp run -S train_multivector.enabled=true` evaluates it and writes them here.\n"
            )
        return
    evalset = EvalSet.load(paths.dataset)
    documents = evalset.documents(params.models.page_input, paths.ocr_cache, paths.ocr_workers, lazy=True)

    # 2. The base model (the fresh projection training starts from) and the finetuned one, each scored the same way
    lengths = {"query_length": config.query_length, "document_length": config.document_length}
    models = {
        "multivector_base": (params.models.embedder, "models.embedder (as a multi-vector model)"),
        "multivector_finetuned": (str(paths.model), "models/multivector (finetuned)"),
    }
    evaluation = Evaluation(evalset, documents)
    for name, (source, label) in models.items():
        names = {"embedder": label, **{length: f"train_multivector.{length}" for length in lengths}}
        with fields_as(names):  # errors name the model by its label, its token limits as train_multivector's
            model = load_multivector(
                source, params.models, projection_dim=config.projection_dim, seed=config.seed, **lengths
            )
        retriever = MultiVectorRetriever(
            model,
            config.encode_batch_size,
            index_dtype=config.index_dtype,
            max_memory_mb=params.search.max_memory_mb,
            bf16=params.encode.bf16,
        )
        row = evaluation.late(name, retriever)
        print(
            f"{name}: ndcg@10 {row['ndcg@10']:.4f}, {row['index_bytes_per_page']:.0f} index bytes/page "
            f"({row['tokens_per_page']:.0f} tokens x {row['token_dims']} dims, {config.index_dtype}), "
            f"{row['ms_per_query']:.1f} ms/query"
        )
        if name == "multivector_base":
            del model, retriever  # the finetuned one stays, for the validation split

    # 3. The finetuned reranker over the finetuned multi-vector model's top evaluate.top_k, as evaluate reranks the
    #    dense embedder's: fused at evaluate.fusion_weight (auto: the weight the validation split chooses for this
    #    retrieval, vdr/evaluation/fusion.py), and its order alone
    evaluate = params.evaluate
    with fields_under("models"):
        reranker = load_reranker(str(paths.reranker), params.models)
    weight = evaluate.fusion_weight
    if weight == "auto":
        validation = validation_evaluation(
            paths.validation, params.models.page_input, paths.ocr_cache, paths.ocr_workers
        )
        validation.late("multivector_finetuned", retriever)
        choice = choose_fusion_weight(
            validation, "multivector_finetuned", reranker, evaluate.top_k, evaluate.batch_size, params.encode.bf16
        )
        weight = choice.reranker_weight
        print(f"validation NDCG@10 by fusion weight: {choice.ndcg_by_weight}")
    with fields_under("evaluate"):
        scored = evaluation.rerank(
            "multivector_finetuned+reranker",
            reranker,
            "multivector_finetuned",
            evaluate.top_k,
            weight,
            evaluate.batch_size,
            bf16=params.encode.bf16,
        )
    for name, row in scored.items():
        print(f"{name}: ndcg@10 {row['ndcg@10']:.4f} ({row['ms_per_query']:.0f} ms/query at top {row['top_k']})")

    # 4. Metrics and run files
    evaluation.write(paths.metrics, paths.runs)


if __name__ == "__main__":
    with stage_process("evaluate_multivector"):
        main(parse_args(Paths, __doc__))
