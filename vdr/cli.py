"""vdr-eval: score any sentence-transformers model, optionally with a reranker, on a BEIR-layout retrieval set.

    vdr-eval --model PATH --dataset DIR --output metrics.json --run-file run.trec \\
             [--reranker PATH --top-k 20 --fusion-weight 1.0] [--dims 384,128,64] [--max-seq-length N] \\
             [--devices auto | cuda:0,cuda:1 | cpu,cpu] [--max-memory-mb 1024] [--index-dtype float16] [--bf16 [auto]]

DIR holds corpus.parquet (or corpus/*.parquet: `id`, and `text` and/or `image` bytes), queries.parquet
(`id`, `text`) and qrels.tsv (`query-id corpus-id score`, graded integers allowed, UTF-8). A query is scored when
it has a relevant page (score > 0); the others are counted in the output's `held_out_set.queries_not_scored`.
Metrics come from pytrec_eval; every dimension is scored from one encoding pass (truncate + renormalise). A text-only
model on an image-only corpus reads the pages through OCR (tesseract-ocr; results cached by image hash).
The embedder encodes on --devices (one worker process per device when there are two or more; auto: every
visible CUDA device when there are two or more), and page embeddings larger than --max-memory-mb go through a
temporary memory-mapped file next to the output, searched block by block within that bound.

A saved multi-vector (late-interaction) model, such as models/multivector (its config_sentence_transformers.json
says MultiVectorEncoder), is scored as evaluate_multivector scores it (vdr/retrieval/multivector.py): every page
encoded once into a token index (--index-dtype), queries ranked by MaxSim within --max-memory-mb. Its metrics add the
index's bytes and tokens per page, its token dims and the ms per query; --dims, --devices lists and
--max-seq-length are refused for it.

The output is shaped as the pipeline's metrics files (metrics/evaluate.json), by the same driver
(vdr/evaluation/driver.py): a row per ranking, `retrieve` (with its `model`) and with --reranker `rerank` (and
`rerank_only`, the reranker's order alone, when --fusion-weight is below 1; each with its `reranker`), then
`held_out_set`: the queries scored, the pages, and the queries not scored by reason. Each row (and each dimension
under `dims`) also holds ndcg, mrr, recall, precision and map at 1, 3, 5, 10 and 100, as BEIR and MTEB report them
(MTEB's `ndcg_at_10` is `ndcg@10`), and `seconds`, the time the row took; then come `main_score` (NDCG@10 of the
final ranking, the one the run file holds), `model`, `dataset`, `settings`, `evaluation_time` and `versions`. The
printed table holds the same numbers, one row per ranking and dimension.

The settings are printed before anything is encoded. The evaluate stage scores with params.yaml's
evaluate.max_seq_length, evaluate.batch_size, evaluate.top_k, evaluate.fusion_weight and encode.bf16: the same
values here give its numbers for the same model and held-out set (the cpu profile: --max-seq-length 128 --batch-size
64 --top-k 10 --bf16 auto, and --fusion-weight the weight its validation split chose, `system.reranker_weight` in
metrics/evaluate.json).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from importlib import metadata
from pathlib import Path

from vdr.config.evaluation import check_devices
from vdr.config.precision import resolve_bf16
from vdr.data.evalset import EvalSet
from vdr.data.reading import has_text, page_input_for
from vdr.errors import FieldError, fields_as, fields_under
from vdr.evaluation.driver import Evaluation
from vdr.evaluation.metrics import CUTOFFS, cutoff_metrics, write_trec_run
from vdr.evaluation.rerank import check_rerank_depth
from vdr.io.files import write_json
from vdr.models.loading import check_json_files, load_embedder
from vdr.models.multivector import is_late_interaction, load_multivector
from vdr.models.reranker import load_reranker
from vdr.models.sources import check_model_source, from_hub, resolve_model
from vdr.retrieval.dense import DenseRetriever
from vdr.retrieval.devices import resolve_devices
from vdr.retrieval.encode import Spill, embedding_dimension
from vdr.retrieval.maxsim import INDEX_DTYPES
from vdr.retrieval.multivector import MultiVectorRetriever
from vdr.retrieval.search import DEFAULT_MAX_MEMORY_MB
from vdr.stage import one_sentence_errors

FLAGS = {"embedder": "--model", "reranker": "--reranker", "top_k": "--top-k", "devices": "--devices", "dims": "--dims"}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_number(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def is_multivector(name: str) -> bool:
    """Whether --model names a saved multi-vector model (vdr/models/multivector.py is_late_interaction)."""
    with fields_under("--model"):
        path = resolve_model(name)
        check_model_source(name, path)
        check_json_files(path)  # a damaged file is named, not reported as a JSON error without a file
        with from_hub(name, path):
            return is_late_interaction(path)


@contextlib.contextmanager
def incomplete_folder(name: str):
    """A TypeError while the library builds a module from a saved folder (a module folder that modules.json lists,
    left out of a copy) becomes one sentence naming the model."""
    try:
        yield
    except TypeError as error:
        raise FieldError(
            "embedder",
            f"{name} could not be loaded ({type(error).__name__}: {error}); is the folder complete: every module "
            "folder its modules.json lists, with its config.json? copy the whole folder again",
        ) from error


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's layout and shows each option's default; an option without one (None, empty,
    or required) says in its own help what happens when it is left out."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, "") or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def bf16_setting(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "true", "false"):
        raise argparse.ArgumentTypeError(f"must be auto, true or false, got '{text}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    """vdr-eval's options, each with its default in --help."""
    parser = argparse.ArgumentParser(prog="vdr-eval", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--model", required=True, help="sentence-transformers model folder, Hub id, or pkg:<package>/<folder>"
    )
    parser.add_argument(
        "--dataset", required=True, type=Path, help="the retrieval set: corpus, queries.parquet and qrels.tsv"
    )
    parser.add_argument("--output", required=True, type=Path, help="metrics JSON")
    parser.add_argument("--run-file", type=Path, help="TREC run file of the final ranking (default: none written)")
    parser.add_argument("--reranker", help="CrossEncoder to rerank the top-k with (default: no reranking)")
    parser.add_argument("--top-k", type=positive_int, default=20, help="pages per query the reranker reorders")
    parser.add_argument(
        "--fusion-weight",
        type=float,
        default=1.0,
        help=(
            "reranked order: w x reranker + (1 - w) x embedder score, standardised per query; 1.0: the reranker alone"
        ),
    )
    parser.add_argument(
        "--dims",
        default="",
        help="comma-separated Matryoshka dimensions scored beside the full size, e.g. 384,128,64 (default: none)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32, help="inputs per encoding and reranking batch")
    parser.add_argument(
        "--max-seq-length",
        type=positive_int,
        default=None,
        help="token limit when encoding (default: the model's own; the evaluate stage: evaluate.max_seq_length)",
    )
    parser.add_argument(
        "--ocr-cache", type=Path, default=None, help="OCR cache folder (default: $VDR_OCR_CACHE or ~/.cache/vdr/ocr)"
    )
    parser.add_argument(
        "--ocr-workers", type=positive_int, default=None, help="tesseract processes side by side (default: up to 4)"
    )
    parser.add_argument(
        "--devices",
        default="auto",
        help="where the embedder encodes: auto (every visible CUDA device when there are two or more, else the "
        "model's device) or comma-separated devices, one process each, e.g. cuda:0,cuda:1 or cpu,cpu",
    )
    parser.add_argument(
        "--max-memory-mb",
        type=positive_number,
        default=DEFAULT_MAX_MEMORY_MB,
        help="MiB for search blocks; page embeddings larger than this go through a temporary memory-mapped file",
    )
    parser.add_argument(
        "--index-dtype",
        choices=INDEX_DTYPES,
        default="float16",
        help="a multi-vector model: how its page token vectors are stored",
    )
    parser.add_argument(
        "--bf16",
        type=bf16_setting,
        nargs="?",
        const="true",
        default="false",
        metavar="{auto,true,false}",
        help="encode and rerank under bf16 autocast, as the pipeline's encode.bf16 (--bf16 alone: true; auto: where "
        "this machine computes bf16 natively): about 3x faster on a CPU with bf16 instructions, the same NDCG@10 to "
        "about 3 decimals",
    )
    return parser


def dtype_of(model) -> str:
    """The dtype of a model's weights ("float32"), or "" when it has none to ask."""
    try:
        return str(next(model.parameters()).dtype).removeprefix("torch.")
    except (AttributeError, StopIteration, TypeError):
        return ""


def version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def model_line(args, multivector: bool, model) -> str:
    """What is scored: the model, its kind and size, and the reranker."""
    size = embedding_dimension(model)
    kind = "multi-vector" if multivector else "dense"
    line = f"model: {args.model} ({kind}" + (f", {size} dims)" if size else ")")
    return line + (f", reranker: {args.reranker}" if args.reranker else "")


def settings_line(settings: dict) -> str:
    """The settings a score depends on, in one line, named as the options that set them."""
    precision = "bf16 autocast" if settings["bf16"] else "float32"
    weights = f", weights {settings['dtype']}" if settings["dtype"] else ""
    length = "the model's own" if settings["max_seq_length_option"] is None else "--max-seq-length"
    parts = [
        f"max_seq_length {settings['max_seq_length']} ({length})",
        f"batch_size {settings['batch_size']}",
        f"precision {precision} (--bf16 {settings['bf16_option']}{weights})",
        f"devices {settings['devices']}",
        f"pages read as {settings['page_input']}" + (" through OCR" if settings["ocr"] else ""),
    ]
    if settings.get("reranker"):
        reranker = settings["reranker"]
        parts.append(
            f"reranker top_k {reranker['top_k']}, fusion_weight {reranker['fusion_weight']}, "
            f"max_length {reranker['max_length']}"
        )
    return "settings: " + ", ".join(parts)


METRIC_LABELS = {"ndcg": "NDCG", "mrr": "MRR", "recall": "Recall", "precision": "Precision"}


def _time_text(row: dict) -> str:
    if "seconds" not in row:
        return ""
    text = f"{row['seconds']:.1f} s"
    if "ms_per_query" in row:
        text += f", {row['ms_per_query']:.1f} ms/query" + (f" at top {row['top_k']}" if "top_k" in row else "")
    return text


def results_table(result: dict, rows: list[str]) -> str:
    """The printed table: for each ranking, its full size and each Matryoshka dimension, NDCG, MRR, Recall and
    Precision at each cutoff, and the time the ranking took (its dimensions come from the same encoding)."""
    lines = []
    for name in rows:
        row = result[name]
        dims = row.get("dims", {})
        full = max((int(d) for d in dims), default=None)
        variants = [(str(full) if full else "", row, _time_text(row))]
        variants += [(d, dims[d], "same encoding") for d in sorted(dims, key=int, reverse=True) if int(d) != full]
        for dim, metrics, timing in variants:
            for metric, label in METRIC_LABELS.items():
                cells = [f"{metrics[f'{metric}@{k}']:.4f}" if f"{metric}@{k}" in metrics else "" for k in CUTOFFS]
                lines.append([name, dim, label, *cells, timing if metric == "ndcg" else ""])
                name, dim = "", ""
    header = ["ranking", "dims", "metric", *[f"@{k}" for k in CUTOFFS], "time"]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    align = ["<", ">", "<", *[">"] * len(CUTOFFS), "<"]
    return "\n".join(
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(line, align, widths)).rstrip() for line in [header, *lines]
    )


@fields_as(FLAGS)  # a bad value's error names the option that gave it (vdr/errors.py)
def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not 0.0 <= args.fusion_weight <= 1.0:
        parser.error(f"--fusion-weight must be between 0 and 1, got {args.fusion_weight}")
    try:
        dims = [int(d) for d in args.dims.split(",") if d.strip()]
    except ValueError:
        parser.error(f"--dims must be comma-separated integers, got '{args.dims}'")
    if any(d < 1 for d in dims):
        parser.error(f"--dims must be positive, got '{args.dims}'")
    devices = args.devices.strip()
    try:
        listed = devices if devices == "auto" else [d.strip() for d in devices.split(",") if d.strip()]
        with fields_as(FLAGS):
            devices = check_devices(listed, "cuda:0,cuda:1 or cpu,cpu")
    except ValueError as error:
        parser.error(str(error))

    resolve_devices(devices)  # a device this machine lacks stops here, before any loading
    multivector = is_multivector(args.model)
    if multivector and (dims or devices != "auto" or args.max_seq_length):
        parser.error(
            "--dims, --devices and --max-seq-length are for dense models: a multi-vector model has no Matryoshka "
            "dimensions, encodes in one process and keeps its saved token limits"
        )
    bf16 = resolve_bf16(args.bf16 if args.bf16 == "auto" else args.bf16 == "true")

    # 1. Data and models; pages read as the model can read them (vdr/data/evalset.py); the settings, said first
    evalset = EvalSet.load(args.dataset)
    if args.reranker:
        check_rerank_depth(args.top_k, len(evalset.corpus_ids))  # before any encoding
    with incomplete_folder(args.model):
        if multivector:
            model = load_multivector(args.model)
        else:
            model = load_embedder(args.model, max_seq_length=args.max_seq_length)
    cross_encoder = load_reranker(args.reranker) if args.reranker else None
    page_input = page_input_for(evalset.corpus, model)
    settings = {
        "max_seq_length": getattr(model, "max_seq_length", None),
        "max_seq_length_option": args.max_seq_length,
        "batch_size": args.batch_size,
        "bf16": bf16,
        "bf16_option": args.bf16,
        "dtype": dtype_of(model),
        "devices": devices,
        "dims": dims,
        "max_memory_mb": args.max_memory_mb,
        "page_input": page_input,
        "ocr": page_input == "text" and not has_text(evalset.corpus),
        **({"index_dtype": args.index_dtype} if multivector else {}),
        "reranker": None,
    }
    if cross_encoder is not None:
        settings["reranker"] = {
            "top_k": args.top_k,
            "fusion_weight": args.fusion_weight,
            "max_length": getattr(cross_encoder, "max_seq_length", None),
            "dtype": dtype_of(cross_encoder),
        }
    print(model_line(args, multivector, model), flush=True)
    print(settings_line(settings), flush=True)
    documents = evalset.documents(page_input, args.ocr_cache, args.ocr_workers, lazy=True)

    # 2. Retrieve: every dimension from one encoding pass, or a multi-vector model's MaxSim over its token index
    evaluation = Evaluation(evalset, documents)
    seconds = {}
    retrieving = time.perf_counter()
    if multivector:
        retriever = MultiVectorRetriever(
            model, args.batch_size, index_dtype=args.index_dtype, max_memory_mb=args.max_memory_mb, bf16=bf16
        )
        evaluation.late("retrieve", retriever)
    else:
        with Spill(args.max_memory_mb, args.output.parent) as spill:
            retriever = DenseRetriever(model, args.batch_size, devices=devices, bf16=bf16, spill=spill)
            evaluation.dense("retrieve", retriever, dims)
    seconds["retrieve"] = time.perf_counter() - retrieving
    evaluation.rows["retrieve"] = {"model": args.model, **evaluation.rows["retrieve"]}
    final = "retrieve"  # the ranking the run file holds

    # 3. Rerank the top-k
    if cross_encoder is not None:
        reranking = time.perf_counter()
        reranked = evaluation.rerank(
            "rerank", cross_encoder, "retrieve", args.top_k, args.fusion_weight, args.batch_size, bf16=bf16
        )
        for name, row in reranked.items():
            row["reranker"] = args.reranker
            seconds[name] = time.perf_counter() - reranking  # the orders share one scoring
        final = "rerank"

    # 4. Every row at every cutoff (BEIR / MTEB), with its time; the metadata a leaderboard's number comes with
    for name in list(evaluation.rows):
        row = evaluation.rows[name] = with_cutoffs(
            evaluation.rows[name], evaluation.runs[name], evalset.qrels, seconds[name]
        )
        for dim, run in evaluation.dimension_runs.get(name, {}).items():
            row["dims"][str(dim)] = {**cutoff_metrics(run, evalset.qrels), **row["dims"][str(dim)]}
    result = evaluation.results()
    result.update(
        {
            "main_score": result[final]["ndcg@10"],
            "main_metric": "ndcg@10",
            "main_ranking": final,
            "model": model_metadata(args, model, multivector, cross_encoder),
            "dataset": dataset_metadata(args.dataset, evalset),
            "settings": settings,
            "evaluation_time": round(time.perf_counter() - started, 3),
            "versions": {name: version_of(name) for name in VERSIONED},
        }
    )

    # 5. Write: the rows and the held-out set's counts as the pipeline's metrics files hold them, the rest beside
    write_json(args.output, result)
    if args.run_file:
        write_trec_run(args.run_file, evaluation.runs[final], final)
    print(results_table(result, list(evaluation.rows)))
    extra = f", {result['retrieve']['index_bytes_per_page']:.0f} index bytes/page" if multivector else ""
    print(
        f"main score (NDCG@10 of {final}): {result['main_score']:.4f}{extra}, over {len(evalset.query_ids)} queries x "
        f"{len(evalset.corpus_ids)} pages; metrics in {args.output}"
        + (f", run file {args.run_file}" if args.run_file else "")
    )


VERSIONED = ("vdr", "sentence-transformers", "transformers", "torch", "pytrec-eval-terrier")


def with_cutoffs(row: dict, run: dict, qrels: dict, seconds: float) -> dict:
    """A row with the metrics at every cutoff added (its own values kept as they are) and the seconds it took, its
    names (model, reranker) first."""
    names = {key: row[key] for key in ("model", "reranker") if key in row}
    return {**names, **cutoff_metrics(run, qrels), **row, "seconds": round(seconds, 3)}


def model_metadata(args, model, multivector: bool, cross_encoder) -> dict:
    """What was scored: each model as named, where it was read from, its kind, size and dtype."""

    def source(name: str) -> dict:
        path = resolve_model(name)
        return {"name": name, "path": str(Path(path).resolve()) if Path(path).exists() else None}

    meta = {**source(args.model), "kind": "multi-vector" if multivector else "dense", "dtype": dtype_of(model)}
    meta["embedding_dim"] = embedding_dimension(model)  # a multi-vector model: each token vector's
    meta["max_seq_length"] = getattr(model, "max_seq_length", None)
    meta["reranker"] = None
    if cross_encoder is not None:
        meta["reranker"] = {**source(args.reranker), "dtype": dtype_of(cross_encoder)}
    return meta


def dataset_metadata(folder: Path, evalset) -> dict:
    """The retrieval set: its folder, name, the queries scored, the pages and the relevance judgments."""
    return {
        "name": folder.resolve().name,
        "path": str(folder.resolve()),
        "queries": len(evalset.query_ids),
        "pages": len(evalset.corpus_ids),
        "relevant_pages": sum(score > 0 for docs in evalset.qrels.values() for score in docs.values()),
    }


def entry() -> None:
    """The `vdr-eval` command: main(), with bad input reported as one sentence (VDR_TRACEBACK=1 for the traceback)."""
    with one_sentence_errors("vdr-eval"):
        main()


if __name__ == "__main__":
    entry()
