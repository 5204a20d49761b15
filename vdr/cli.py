"""vdr-eval: score any sentence-transformers model, optionally with a reranker, on a BEIR-layout retrieval set.

    vdr-eval --model PATH --dataset DIR --output metrics.json --run-file run.trec \\
             [--reranker PATH --top-k 20 --fusion-weight 1.0] [--dims 384,128,64] \\
             [--devices auto | cuda:0,cuda:1 | cpu,cpu] [--max-memory-mb 1024] [--index-dtype float16] [--bf16]

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
`held_out_set`: the queries scored, the pages, and the queries not scored by reason.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from vdr.config.evaluation import check_devices
from vdr.data.evalset import EvalSet
from vdr.data.reading import page_input_for
from vdr.errors import fields_as, fields_under
from vdr.evaluation.driver import Evaluation
from vdr.evaluation.metrics import write_trec_run
from vdr.io.files import write_json
from vdr.models.loading import load_embedder
from vdr.models.multivector import is_late_interaction, load_multivector
from vdr.models.reranker import load_reranker
from vdr.models.sources import check_model_source, from_hub, resolve_model
from vdr.retrieval.dense import DenseRetriever
from vdr.retrieval.devices import resolve_devices
from vdr.retrieval.encode import Spill
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
        with from_hub(name, path):
            return is_late_interaction(path)


@fields_as(FLAGS)  # a bad value's error names the option that gave it (vdr/errors.py)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vdr-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="sentence-transformers model folder, Hub id, or pkg:<package>/<folder>"
    )
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path, help="metrics JSON")
    parser.add_argument("--run-file", type=Path, help="TREC run file of the final ranking")
    parser.add_argument("--reranker", help="CrossEncoder to rerank the top-k with")
    parser.add_argument("--top-k", type=positive_int, default=20)
    parser.add_argument(
        "--fusion-weight",
        type=float,
        default=1.0,
        help=(
            "reranked order: w x reranker + (1 - w) x embedder score, standardised per query; 1.0: the reranker alone"
        ),
    )
    parser.add_argument("--dims", default="", help="comma-separated Matryoshka dimensions, e.g. 384,128,64")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--max-seq-length", type=positive_int, default=None)
    parser.add_argument(
        "--ocr-cache", type=Path, default=None, help="OCR cache folder (default $VDR_OCR_CACHE or ~/.cache/vdr/ocr)"
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
        action="store_true",
        help="encode and rerank under bf16 autocast (the pipeline's encode.bf16): about 3x faster on a CPU with bf16 "
        "instructions, the same NDCG@10 to about 3 decimals",
    )
    args = parser.parse_args(argv)
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

    # 1. Data and model; pages read as the model can read them (vdr/data/evalset.py)
    evalset = EvalSet.load(args.dataset)
    if multivector:
        model = load_multivector(args.model)
    else:
        model = load_embedder(args.model, max_seq_length=args.max_seq_length)
    documents = evalset.documents(page_input_for(evalset.corpus, model), args.ocr_cache, args.ocr_workers, lazy=True)

    # 2. Retrieve: every dimension from one encoding pass, or a multi-vector model's MaxSim over its token index
    evaluation = Evaluation(evalset, documents)
    if multivector:
        retriever = MultiVectorRetriever(
            model, args.batch_size, index_dtype=args.index_dtype, max_memory_mb=args.max_memory_mb, bf16=args.bf16
        )
        evaluation.late("retrieve", retriever)
    else:
        with Spill(args.max_memory_mb, args.output.parent) as spill:
            retriever = DenseRetriever(model, args.batch_size, devices=devices, bf16=args.bf16, spill=spill)
            evaluation.dense("retrieve", retriever, dims)
    evaluation.rows["retrieve"] = {"model": args.model, **evaluation.rows["retrieve"]}
    final = "retrieve"  # the ranking the run file holds

    # 3. Rerank the top-k
    if args.reranker:
        cross_encoder = load_reranker(args.reranker)
        reranked = evaluation.rerank(
            "rerank",
            cross_encoder,
            "retrieve",
            args.top_k,
            args.fusion_weight,
            args.batch_size,
            bf16=args.bf16,
        )
        for row in reranked.values():
            row["reranker"] = args.reranker
        final = "rerank"

    # 4. Write: the rows and the held-out set's counts, as the pipeline's metrics files hold them
    result = evaluation.results()
    write_json(args.output, result)
    if args.run_file:
        write_trec_run(args.run_file, evaluation.runs[final], final)
    print(
        f"ndcg@10 {result['retrieve']['ndcg@10']:.4f}"
        + (f", {result['retrieve']['index_bytes_per_page']:.0f} index bytes/page" if multivector else "")
        + (f", reranked {result['rerank']['ndcg@10']:.4f}" if args.reranker else "")
    )


def entry() -> None:
    """The `vdr-eval` command: main(), with bad input reported as one sentence (VDR_TRACEBACK=1 for the traceback)."""
    with one_sentence_errors("vdr-eval"):
        main()


if __name__ == "__main__":
    entry()
