"""CPU inference backends against torch: the finetuned embedder and reranker on the same held-out pages, in one run.

    python benchmarks/backends.py                                # the held-out set (after `dvc repro`), best of 3
    python benchmarks/backends.py --pages 200 --repeats 1        # a quick run on 200 pages
    python benchmarks/backends.py --backends torch,ort,ort-int8 --no-reranker

The extra packages are not in the project's lock: install them in a separate virtual environment, never the
project's own (the environment's path is yours to choose):

    python3.11 -m venv ../backends-venv
    ../backends-venv/bin/pip install -r requirements.lock onnxruntime==1.31.1 openvino==2026.4.1 onnx==1.23.2 \\
        onnxscript==0.7.2 nncf==3.4.0
    ../backends-venv/bin/pip install --no-deps -e .
    ../backends-venv/bin/python benchmarks/backends.py

sentence-transformers' own `backend="onnx"` / `"openvino"` is not used: it needs optimum-onnx / optimum-intel>=2.0,
and every release of those caps transformers below the lock's 5.24 (optimum-onnx 0.1.0: <4.58, optimum-intel
2.2.0: <5.6, and huggingface-hub <1.22). So this script exports the model itself:

    torch fp32            the baseline, exactly as the evaluate stage encodes: vdr/models/loading.py load_embedder /
                          load_reranker, evaluate.max_seq_length and batch_size, vdr/retrieval/encode.py encoding
    torch bf16            the same under CPU bf16 autocast (the weights stay float32)
    onnxruntime fp32      torch.onnx.export of the model's sentence-transformers modules (Transformer, mean
                          Pooling, then Normalize, or the reranker's Dense and its sigmoid), dynamic batch and
                          sequence axes, run by ONNX Runtime
    onnxruntime int8      that ONNX model after ONNX Runtime's dynamic quantization (int8 weights with a scale per
                          output channel, activations quantized per batch as they come)
    openvino fp32 / bf16  that ONNX model converted to OpenVINO, run with inference precision f32 / bf16
    openvino int8         that OpenVINO model after NNCF's static post-training quantization, calibrated on
                          training pages (--calibration), never on the held-out ones

Every backend but torch reads the same inputs: the model's own tokenizer (its preprocess), its prompts, and
sentence-transformers' length-sorted batches. Exports are cached in --cache (default $XDG_CACHE_HOME/vdr/backends or
~/.cache/vdr/backends), in a folder named by the content hash of the model folder, so a run re-exports only a
model that changed. NDCG@10 comes from the project's own evaluation driver (vdr/evaluation/driver.py, pytrec_eval)
on each backend's embeddings; the reranker reorders the torch embedder's top evaluate.top_k with each backend and is
scored as evaluate scores it (fused with the embedder's score at evaluate.fusion_weight). The
fp32 backends must give torch's NDCG@10 within 0.001, else the script exits with status 1.

Timings: every backend runs --repeats times, interleaved with the others (torch, onnxruntime, ..., torch, ...), and
the best run counts; every backend uses torch's thread count. Other processes on the machine still make them noisy:
read the ratios, and rerun before trusting a small one.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vdr.config.params import load_params
from vdr.data.evalset import EvalSet
from vdr.errors import fields_as, fields_under
from vdr.evaluation.driver import Evaluation
from vdr.models.loading import load_embedder
from vdr.models.reranker import load_reranker
from vdr.models.sources import resolve_model
from vdr.retrieval.dense import DenseRetriever

BASELINE = "torch fp32"
BACKENDS = {  # --backends key: (its name in the tables, the extra packages it needs, as imported)
    "torch": (BASELINE, ()),
    "torch-bf16": ("torch bf16 autocast", ()),
    "ort": ("onnxruntime fp32", ("onnx", "onnxscript", "onnxruntime")),
    "ort-int8": ("onnxruntime int8 dynamic", ("onnx", "onnxscript", "onnxruntime")),
    "ov": ("openvino fp32", ("onnx", "onnxscript", "openvino")),
    "ov-bf16": ("openvino bf16", ("onnx", "onnxscript", "openvino")),
    "ov-int8": ("openvino int8 static", ("onnx", "onnxscript", "openvino", "nncf")),
}
FP32 = ("onnxruntime fp32", "openvino fp32")  # the same arithmetic as torch: the same NDCG@10, within FP32_TOLERANCE
FP32_TOLERANCE = 0.001
INSTALL = (
    "install them in a separate virtual environment (never the project's own):\n"
    "    python3.11 -m venv ../backends-venv\n"
    "    ../backends-venv/bin/pip install -r requirements.lock onnxruntime==1.31.1 openvino==2026.4.1 "
    "onnx==1.23.2 onnxscript==0.7.2 nncf==3.4.0\n"
    "    ../backends-venv/bin/pip install --no-deps -e .\n"
    "    ../backends-venv/bin/python benchmarks/backends.py"
)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # a BERT-style text model's tokenizer outputs
EXPORT_RECIPE = "1"  # hashed into every cache folder's name: change it when the export code changes
CALIBRATION_ROWS = 128  # training rows whose pages and queries (or query-page pairs) calibrate openvino int8
CALIBRATION_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Row:
    """One backend's line in a table: its speed (pages/s or ms/query), NDCG@10, and its largest difference from
    torch fp32's output (an embedding value or a reranker score)."""

    backend: str
    speed: float
    ndcg: float
    max_diff: float


def table(rows: list[Row], unit: str, higher_is_faster: bool) -> str:
    """A markdown table, torch fp32 first: speed-up = how many times faster than torch fp32, delta = NDCG@10 minus
    torch fp32's."""
    base = next(row for row in rows if row.backend == BASELINE)
    lines = [
        f"| backend | {unit} | speed-up vs torch | NDCG@10 | delta NDCG@10 | max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda row: row.backend != BASELINE):
        speed_up = row.speed / base.speed if higher_is_faster else base.speed / row.speed
        lines.append(
            f"| {row.backend} | {row.speed:.1f} | {speed_up:.2f}x | {row.ndcg:.4f} | {row.ndcg - base.ndcg:+.4f} "
            f"| {row.max_diff:.1e} |"
        )
    return "\n".join(lines)


def fp32_failures(rows: list[Row], what: str) -> list[str]:
    """The fp32 backends whose NDCG@10 is not torch fp32's within FP32_TOLERANCE, one sentence each."""
    base = next(row for row in rows if row.backend == BASELINE)
    return [
        f"{what}: {row.backend} gives NDCG@10 {row.ndcg:.4f}, torch fp32 {base.ndcg:.4f} "
        f"(more than {FP32_TOLERANCE} apart): its export does not compute what torch computes"
        for row in rows
        if row.backend in FP32 and abs(row.ndcg - base.ndcg) > FP32_TOLERANCE
    ]


def missing_packages(backends: list[str]) -> list[str]:
    """The extra packages the chosen backends need that are not installed."""
    needed = dict.fromkeys(package for key in backends for package in BACKENDS[key][1])
    return [package for package in needed if importlib.util.find_spec(package) is None]


def cut(evalset: EvalSet, pages: int | None) -> EvalSet:
    """The held-out set cut to `pages` pages for a quick run: the queries' relevant pages first, then the others
    (in corpus order), and only the queries whose relevant pages are all kept."""
    ids = evalset.corpus_ids
    if pages is None or pages >= len(ids):
        return evalset
    relevant = evalset.relevant()
    wanted = set().union(*relevant.values())
    keep = sorted(sorted(range(len(ids)), key=lambda i: (ids[i] not in wanted, i))[:pages])
    kept = {ids[i] for i in keep}
    queries = [i for i, query in enumerate(evalset.query_ids) if relevant[query] <= kept]
    if not queries:
        sys.exit(f"--pages {pages}: no query has all its relevant pages among them; give more pages")
    query_ids = [evalset.query_ids[i] for i in queries]
    return dataclasses.replace(
        evalset,
        corpus=evalset.corpus.take(keep),
        corpus_ids=[ids[i] for i in keep],
        query_ids=query_ids,
        query_texts=[evalset.query_texts[i] for i in queries],
        qrels={query: evalset.qrels[query] for query in query_ids},
    )


def content_hash(folder: Path) -> str:
    """The hash of every file in a model folder (names and bytes) and of the export recipe."""
    digest = hashlib.sha256(f"export recipe {EXPORT_RECIPE}\n".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cached(folder: Path, make: Callable[[Path], None]) -> Path:
    """`folder`, made by make(an empty temporary folder beside it), then renamed, unless a run made it before."""
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        started = time.perf_counter()
        make(temporary)
        temporary.rename(folder)
        print(f"  made {folder} in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def export_onnx(model, output: str, activation, example_inputs: list, folder: Path) -> None:
    """torch.onnx.export of the model's modules, from the tokenizer's tensors to `output` (then `activation`),
    with dynamic batch and sequence axes; `example_inputs` (two, of different lengths) are traced."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.activation = model, activation

        def forward(self, input_ids, attention_mask, token_type_ids):
            features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            result = self.model({**features, "modality": "text"})[output]
            return result if self.activation is None else self.activation(result).squeeze(-1)

    example = model.preprocess(example_inputs)
    dynamic = {name: {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC} for name in INPUT_NAMES}
    with torch.no_grad():
        torch.onnx.export(
            Exported().eval(),
            (),
            str(folder / "model.onnx"),
            kwargs={name: example[name] for name in INPUT_NAMES},
            input_names=list(INPUT_NAMES),
            output_names=["output"],
            dynamic_shapes=dynamic,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def quantize_onnx(source: Path, folder: Path) -> None:
    """ONNX Runtime's dynamic quantization: int8 weights (a scale per output channel), activations quantized per
    batch. The exporter's shape annotations are dropped first: the quantizer infers its own, and its rewriting of
    the reranker's head contradicts them."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source / "model.onnx"))
    del model.graph.value_info[:]
    onnx.save(model, str(folder / "unannotated.onnx"))
    quantize_dynamic(
        str(folder / "unannotated.onnx"), str(folder / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True
    )
    (folder / "unannotated.onnx").unlink()


def convert_openvino(source: Path, folder: Path) -> None:
    """The ONNX model in OpenVINO's format, its weights kept float32."""
    import openvino

    openvino.save_model(
        openvino.convert_model(str(source / "model.onnx")), str(folder / "model.xml"), compress_to_fp16=False
    )


def quantize_openvino(source: Path, batches: list[dict], folder: Path) -> None:
    """NNCF's static post-training int8 quantization (weights and activations) of the OpenVINO model, its
    activation ranges calibrated on `batches` of tokenized training inputs."""
    import nncf
    import openvino

    model = openvino.Core().read_model(str(source / "model.xml"))
    quantized = nncf.quantize(
        model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches)
    )
    openvino.save_model(quantized, str(folder / "model.xml"), compress_to_fp16=False)


def onnxruntime_forward(model_file: Path, threads: int) -> Callable[[dict], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    return lambda features: session.run(None, features)[0]


def openvino_forward(model_file: Path, precision: str, threads: int) -> Callable[[dict], np.ndarray]:
    import openvino

    config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = openvino.Core().compile_model(str(model_file), "CPU", config)
    request, output = compiled.create_infer_request(), compiled.output(0)
    return lambda features: request.infer(features)[output].copy()


class Runner:
    """encode_query / encode_document / predict as sentence-transformers runs them (the model's preprocess, its
    prompts, the same length-sorted batches), with the forward pass of its modules done by `forward`."""

    def __init__(self, model, forward: Callable[[dict], np.ndarray]):
        self.model, self.forward = model, forward

    def encode_query(self, texts: list[str], batch_size: int, **options) -> np.ndarray:
        return self._run(texts, batch_size, self.model.prompts.get("query"))

    def encode_document(self, texts: list[str], batch_size: int, **options) -> np.ndarray:
        return self._run(texts, batch_size, self.model.prompts.get("document"))

    def predict(self, pairs: list[tuple[str, str]], batch_size: int, **options) -> np.ndarray:
        return self._run(pairs, batch_size, None)

    def _run(self, inputs: list, batch_size: int, prompt: str | None) -> np.ndarray:
        order = np.argsort([-self.model._input_length(item) for item in inputs])
        outputs = []
        for start in range(0, len(order), batch_size):
            features = self.model.preprocess([inputs[i] for i in order[start : start + batch_size]], prompt=prompt)
            outputs.append(self.forward({name: features[name].numpy() for name in INPUT_NAMES}))
        ordered = np.concatenate(outputs)
        result = np.empty_like(ordered)
        result[order] = ordered
        return result


class Autocast:
    """A sentence-transformers model whose encode_query / encode_document / predict run under CPU bf16 autocast."""

    def __init__(self, model):
        self.model = model

    def encode_query(self, *args, **options) -> np.ndarray:
        return self._run(self.model.encode_query, *args, **options)

    def encode_document(self, *args, **options) -> np.ndarray:
        return self._run(self.model.encode_document, *args, **options)

    def predict(self, *args, **options) -> np.ndarray:
        return self._run(self.model.predict, *args, **options)

    @staticmethod
    def _run(method, *args, **options) -> np.ndarray:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            return np.asarray(method(*args, **options), dtype=np.float32)


class Recording:
    """A reranker whose last predict scores are kept, to compare them with torch's."""

    def __init__(self, model):
        self.model, self.scores = model, None

    def predict(self, pairs, **options) -> np.ndarray:
        self.scores = np.asarray(self.model.predict(pairs, **options), dtype=np.float64)
        return self.scores


def calibration_inputs(folder: Path, reranker: bool) -> list:
    """CALIBRATION_ROWS training rows, evenly spread: their page texts and queries (an embedder), or each query with
    its page and with the next row's page (a reranker)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(folder, columns=["text", "query"]).to_pylist()
    rows = [row for row in rows if row["text"] and row["text"].strip() and row["query"]]
    if len(rows) < 2:
        sys.exit(f"--calibration {folder}: no training pages with a text and a query to calibrate openvino int8 on")
    rows = [rows[i] for i in np.linspace(0, len(rows) - 1, min(CALIBRATION_ROWS, len(rows))).astype(int)]
    if not reranker:
        return [row["text"] for row in rows] + [row["query"] for row in rows]
    following = rows[1:] + rows[:1]
    return [(row["query"], row["text"]) for row in rows] + [(r["query"], n["text"]) for r, n in zip(rows, following)]


def runners(model, folder: Path, backends: list[str], args, threads: int, reranker: bool) -> dict:
    """{backend name: what encodes (or predicts) with it}: torch fp32 the loaded model itself, the others made
    from the exports cached for the model folder's content."""
    output, activation = ("scores", model.activation_fn) if reranker else ("sentence_embedding", None)
    examples = [("a query", "a page"), ("a longer query", "and a longer page")] if reranker else ["a", "a longer one"]
    cache = args.cache / f"{folder.name}-{content_hash(folder)}"
    made: dict[str, Path] = {}

    def onnx() -> Path:
        if "onnx" not in made:
            made["onnx"] = cached(
                cache / "onnx-fp32", lambda out: export_onnx(model, output, activation, examples, out)
            )
        return made["onnx"]

    def openvino() -> Path:
        if "openvino" not in made:
            made["openvino"] = cached(cache / "openvino-fp32", lambda out: convert_openvino(onnx(), out))
        return made["openvino"]

    found = {}
    for key in backends:
        name = BACKENDS[key][0]
        if key == "torch":
            found[name] = model
        elif key == "torch-bf16":
            found[name] = Autocast(model)
        elif key == "ort":
            found[name] = Runner(model, onnxruntime_forward(onnx() / "model.onnx", threads))
        elif key == "ort-int8":
            quantized = cached(cache / "onnx-int8", lambda out: quantize_onnx(onnx(), out))
            found[name] = Runner(model, onnxruntime_forward(quantized / "model.onnx", threads))
        elif key in ("ov", "ov-bf16"):
            precision = "bf16" if key == "ov-bf16" else "f32"
            found[name] = Runner(model, openvino_forward(openvino() / "model.xml", precision, threads))
        elif key == "ov-int8":
            inputs = calibration_inputs(args.calibration, reranker)
            batches = []
            for start in range(0, len(inputs), CALIBRATION_BATCH):
                features = model.preprocess(inputs[start : start + CALIBRATION_BATCH])
                batches.append({name: features[name].numpy() for name in INPUT_NAMES})
            calibration = hashlib.sha256(repr(inputs).encode()).hexdigest()[:12]
            quantized = cached(
                cache / f"openvino-int8-{calibration}", lambda out: quantize_openvino(openvino(), batches, out)
            )
            found[name] = Runner(model, openvino_forward(quantized / "model.xml", "f32", threads))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dataset", type=Path, default=Path("data/pages/eval"), help="the held-out set (BEIR)")
    parser.add_argument("--embedder", type=Path, default=Path("models/embedder"))
    parser.add_argument("--reranker", type=Path, default=Path("models/reranker"))
    parser.add_argument("--no-reranker", action="store_true", help="only the embedder")
    parser.add_argument("--calibration", type=Path, default=Path("data/pages/train"), help="openvino int8's data")
    parser.add_argument("--pages", type=int, help="only this many pages of the held-out set (a quick run)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each backend, interleaved; the best counts")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"some of {', '.join(BACKENDS)}")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vdr" / "backends"
    parser.add_argument("--cache", type=Path, default=cache, help="exported models (default %(default)s)")
    args = parser.parse_args(argv)
    backends = ["torch", *(key for key in dict.fromkeys(args.backends.split(",")) if key != "torch")]
    unknown = [key for key in backends if key not in BACKENDS]
    if unknown:
        sys.exit(f"--backends: unknown {unknown}; choose among {', '.join(BACKENDS)}")

    # 1. The extra packages, checked before anything is loaded
    missing = missing_packages(backends)
    if missing:
        sys.exit(
            f"benchmarks/backends.py: {', '.join(missing)} not installed (the project's lock has none); {INSTALL}"
        )
    import torch

    # 2. Parameters, the held-out set (cut to --pages), its pages as text, and the threads every backend uses
    params = load_params(args.params)
    evaluate = params.evaluate
    if params.models.page_input != "text":
        sys.exit(f"models.page_input is {params.models.page_input}: this benchmark exports text models only")
    evalset = cut(EvalSet.load(args.dataset), args.pages)
    documents = evalset.documents("text")
    threads = torch.get_num_threads()
    installed = [name for name in ("torch", "onnxruntime", "openvino", "nncf") if importlib.util.find_spec(name)]
    versions = {name: importlib.import_module(name).__version__ for name in installed}
    print(f"{evalset}; {threads} threads of {os.cpu_count()} CPU cores; {versions}", flush=True)

    # 3. The embedder on each backend: torch fp32 as evaluate loads it, the others from its cached exports
    with fields_under("--embedder"):
        folder = Path(resolve_model(str(args.embedder)))
    with fields_as({"embedder": "--embedder"}):
        model = load_embedder(str(folder), params.models, max_seq_length=evaluate.max_seq_length)
    encoders = runners(model, folder, backends, args, threads, reranker=False)

    # 4. Queries and pages encoded on each backend (in this process, float32, as a DenseRetriever outside its
    # encoding block), interleaved, best of --repeats; NDCG@10 from the evaluation driver (vdr/evaluation/driver.py)
    seconds, embeddings = {name: float("inf") for name in encoders}, {}
    for repeat in range(args.repeats):
        for name, encoder in encoders.items():
            retriever = DenseRetriever(encoder, evaluate.batch_size)
            queries = retriever.encode_queries(evalset.query_texts)
            started = time.perf_counter()
            pages = retriever.index(documents)
            seconds[name] = min(seconds[name], time.perf_counter() - started)
            embeddings[name] = (queries, pages)
            print(f"  run {repeat + 1}: {name}: {len(documents) / seconds[name]:.1f} pages/s so far", flush=True)
    evaluation, rows = Evaluation(evalset, documents), []
    for name, (queries, pages) in embeddings.items():
        metrics = evaluation.embeddings(name, DenseRetriever(), queries, pages, [])
        difference = float(np.abs(pages - embeddings[BASELINE][1]).max())
        rows.append(Row(name, len(documents) / seconds[name], metrics["ndcg@10"], difference))
    del encoders, embeddings
    print(f"\nEmbedder ({folder}): {len(evalset.query_ids)} queries, {len(documents)} pages")
    print(table(rows, "pages/s", higher_is_faster=True), flush=True)
    failures = fp32_failures(rows, "embedder")

    # 5. The reranker on each backend, over torch fp32's top evaluate.top_k, interleaved, best of --repeats
    if not args.no_reranker:
        with fields_under("--reranker"):
            folder = Path(resolve_model(str(args.reranker)))
        with fields_under("models"):
            baseline = load_reranker(str(folder), params.models)
        rerankers = {
            name: Recording(reranker)
            for name, reranker in runners(baseline, folder, backends, args, threads, reranker=True).items()
        }
        cost, scored = {name: float("inf") for name in rerankers}, {}
        for repeat in range(args.repeats):
            for name, reranker in rerankers.items():
                with fields_under("evaluate"):
                    metrics = evaluation.rerank(
                        "reranked", reranker, BASELINE, evaluate.top_k, evaluate.fusion_weight, evaluate.batch_size
                    )
                cost[name] = min(cost[name], metrics["reranked"]["ms_per_query"])
                scored[name] = metrics
                print(f"  run {repeat + 1}: {name}: {cost[name]:.1f} ms/query so far", flush=True)
        base_scores = rerankers[BASELINE].scores
        rows = [
            Row(name, cost[name], scored[name]["reranked"]["ndcg@10"], float(np.abs(r.scores - base_scores).max()))
            for name, r in rerankers.items()
        ]
        print(
            f"\nReranker ({folder}): top {evaluate.top_k} of torch fp32's embedder ranking per query, NDCG@10 fused "
            f"at weight {evaluate.fusion_weight} as evaluate fuses it"
        )
        print(table(rows, "ms/query", higher_is_faster=False))
        alone = ", ".join(f"{name} {metrics['reranked_only']['ndcg@10']:.4f}" for name, metrics in scored.items())
        print(f"NDCG@10 of the reranker's order alone: {alone}")
        failures += fp32_failures(rows, "reranker")

    # 6. The fp32 backends must compute what torch computes
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"\nTimings are the best of {args.repeats} interleaved runs on a machine shared with other work: noisy.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
