"""What fraction of the CPU's peak FLOP/s do the training stages reach? Counted FLOPs of real steps / their time.

    python benchmarks/flops.py                  # from the repository root, after `dvc repro mine_reranker`
    python benchmarks/flops.py --steps 5 --repeats 3

1. The achievable peak: the best GFLOP/s of large square matmuls in torch, float32 and bfloat16, on torch's
   thread count (the stages leave it at its default), plus a matmul of the embedder's feed-forward shape; the CPU
   flags that decide the kernels (AVX-512, AVX-512 BF16, AMX) and the oneDNN kernel a bfloat16 matmul runs.
2. Each training stage as params.yaml sets it up, built with the stage's own functions (the model loader, the
   dataset, the loss, the shared training arguments) and trained by its Trainer for warm-up + --steps steps:
   train_embedder (MatryoshkaLoss over MultipleNegativesRankingLoss, cached or plain) with bf16 off and on,
   train_reranker (CrossEncoder, BinaryCrossEntropyLoss) as params.yaml sets bf16. One run counts every step's FLOPs
   with torch.utils.flop_counter.FlopCounterMode (forward, backward and the cached loss's extra forward; the counter
   slows the step, so that run is not timed); --repeats more runs on the same batches (same seed) time each step,
   from the Trainer's step begin to its step end: forward, backward, gradient clipping, optimizer. The first of
   them profiles one extra step (torch.profiler, top operators by self CPU time).
3. One table: GFLOP per step, the best time of each step over the repeats, GFLOP/s and the fraction of the peak of
   the dtype the matmuls run in. "loop s" is the best time from one step's end to the next's, which adds the
   batch's tokenisation and the logging: what the stage's progress bar sees.

Other processes sharing the cores slow any run down, never speed it up, so every figure is the best of its
repeats; still, times on a shared machine are noisy, and two runs differ by more than their digits suggest.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

MINED = Path("data/mined/train.parquet")  # train_embedder's triplets (the mine stage's output, dvc.yaml)
MINED_RERANKER = Path("data/mined_reranker/train.parquet")  # train_reranker's rows (mine_reranker's output)

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
SQUARE_SIZES = (1024, 2048, 4096)
TOP_OPS = 8


# ---------------------------------------------------------------- 1. the peak


def cpu_flags(cpuinfo: str) -> dict[str, bool]:
    """Which of FLAGS the first processor of /proc/cpuinfo's text has."""
    found = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE)
    present = set(found.group(1).split()) if found else set()
    return {flag: flag in present for flag in FLAGS}


def matmul_gflops(m: int, k: int, n: int, dtype: torch.dtype, repeats: int) -> float:
    """Best GFLOP/s of an (m x k) @ (k x n) matmul, after one untimed call."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    with torch.inference_mode():
        a @ b
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - started)
    return 2 * m * k * n / best / 1e9


def onednn_kernel(dtype: str) -> str:
    """The oneDNN implementation a small matmul of `dtype` runs (its verbose log, in a fresh process); float32
    matmuls go to MKL, which logs nothing here."""
    code = f"import torch; a = torch.randn(512, 512, dtype=torch.{dtype}); a @ a"
    log = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, ONEDNN_VERBOSE="1"), capture_output=True, text=True
    ).stdout
    marker = ",primitive,exec,cpu,matmul,"  # then the implementation, e.g. brg_matmul:avx512_core_bf16
    kernels = [line.split(marker)[1].split(",")[0] for line in log.splitlines() if marker in line]
    return kernels[0] if kernels else "none from oneDNN (MKL)"


def peak(repeats: int) -> dict[str, float]:
    """{dtype: best GFLOP/s} over the square sizes; prints each measurement and the CPU's flags."""
    flags = cpu_flags(Path("/proc/cpuinfo").read_text())
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads (OMP_NUM_THREADS {threads}) on ", end="")
    print(f"{os.cpu_count()} CPUs, kernels for {torch.backends.cpu.get_cpu_capability()}")
    print("CPU flags: " + ", ".join(f"{flag} {'yes' if has else 'no'}" for flag, has in flags.items()))
    print(f"bfloat16 matmul kernel: {onednn_kernel('bfloat16')}; float32: {onednn_kernel('float32')}")
    best = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates = {size: matmul_gflops(size, size, size, dtype, repeats) for size in SQUARE_SIZES}
        ffn = matmul_gflops(32 * 128, 384, 1536, dtype, repeats)  # 32 pages x 128 tokens through a MiniLM FFN
        best[name] = max(rates.values())
        sizes = ", ".join(f"{size}^3 {rate:.0f}" for size, rate in rates.items())
        print(f"peak {name}: {best[name]:.0f} GFLOP/s (square {sizes}; FFN shape 4096x384x1536 {ffn:.0f})")
    return best


# ---------------------------------------------------------------- 2. the training stages


@dataclass
class StepMeter:
    """A Trainer callback: each step's seconds (step begin to step end) and loop seconds (step end to step end);
    with `count`, each step's FLOPs instead; with `profile_step`, that step's top operators."""

    count: bool = False
    profile_step: int | None = None
    seconds: list[float] = field(default_factory=list)
    loop_seconds: list[float] = field(default_factory=list)
    flops: list[int] = field(default_factory=list)
    top_ops: list[tuple[str, float, float]] = field(default_factory=list)

    def __post_init__(self):
        self._counter = self._profiler = self._started = self._last_end = None

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                meter.begin(state.global_step + 1)

            def on_step_end(self, args, state, control, **kwargs):
                meter.end()

        return Callback()

    def begin(self, step: int) -> None:
        if self.count:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        if step == self.profile_step:
            self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._profiler.__enter__()
        self._started = time.perf_counter()

    def end(self) -> None:
        ended = time.perf_counter()
        if self._profiler is not None:
            self._profiler.__exit__(None, None, None)
            self.top_ops = top_operators(self._profiler, TOP_OPS)
            self._profiler = None
            return  # the profiled step is not timed
        self.seconds.append(ended - self._started)
        self.loop_seconds.append(ended - self._last_end if self._last_end is not None else float("nan"))
        self._last_end = ended
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops.append(self._counter.get_total_flops())
            self._counter = None


def top_operators(profiler, limit: int) -> list[tuple[str, float, float]]:
    """(operator, self CPU ms, share of the step's self CPU time) of the `limit` largest."""
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in events)
    events.sort(key=lambda event: event.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / 1e3, e.self_cpu_time_total / total) for e in events[:limit]]


def embedder_trainer(params, bf16: bool, max_steps: int, callback, output_dir: Path):
    """train_embedder's trainer, built as stages/train_embedder.py builds it, with bf16 as given."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from vdr.errors import fields_under
    from vdr.models.loading import load_embedder
    from vdr.training.lora import prepare
    from vdr.training.trainer import BATCH_SAMPLERS, embedder_loss, read_triplets, training_arguments

    config = params.train_embedder.model_copy(update={"bf16": bf16})
    with fields_under("models"):
        model = load_embedder(params.models.embedder, params.models, max_seq_length=config.max_seq_length)
    prepare(model, config, params.models.embedder, "train_embedder")
    dataset = read_triplets(MINED, config.max_train_samples)
    loss = embedder_loss(model, config)
    args = training_arguments(
        SentenceTransformerTrainingArguments,
        config,
        output_dir,
        batch_sampler=BATCH_SAMPLERS[config.batch_sampler],
        max_steps=max_steps,
    )
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[callback])


def reranker_trainer(params, bf16: bool, max_steps: int, callback, output_dir: Path):
    """train_reranker's trainer, built as stages/train_reranker.py builds it (no evaluator), with bf16 as given."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import set_seed

    from vdr.errors import fields_under
    from vdr.io.tables import read_table
    from vdr.models.reranker import keep_first_layers, load_reranker
    from vdr.training.lora import prepare
    from vdr.training.pairs import labelled_pairs
    from vdr.training.trainer import training_arguments

    config = params.train_reranker.model_copy(update={"bf16": bf16})
    set_seed(config.seed)
    with fields_under("models"):
        model = load_reranker(params.models.reranker, params.models, max_length=config.max_length)
    with fields_under("train_reranker"):
        keep_first_layers(model, config.num_layers)
    prepare(model, config, params.models.reranker, "train_reranker")
    table = read_table(MINED_RERANKER)
    training = table.slice(0, table.num_rows - config.eval_queries)  # the stage holds the last rows out
    if config.max_train_queries is not None:
        training = training.slice(0, config.max_train_queries)
    dataset = labelled_pairs(training, config.negatives_per_positive)
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(config.pos_weight))
    args = training_arguments(
        CrossEncoderTrainingArguments,
        config,
        output_dir,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        ddp_find_unused_parameters=False,
        max_steps=max_steps,
    )
    return CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[callback])


def train_steps(build, params, bf16: bool, steps: int, meter: StepMeter) -> StepMeter:
    """Train a freshly built stage for `steps` steps with `meter` attached; no progress bar, no log lines."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    with tempfile.TemporaryDirectory(prefix="flops-") as folder:
        trainer = build(params, bf16, steps, meter.callback(), Path(folder))
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return meter


@dataclass
class Measured:
    name: str
    dtype: str  # the dtype the matmuls run in: the peak it is compared with
    flops: list[int]  # per timed step
    seconds: list[float]  # per timed step, the best over the repeats
    loop_seconds: list[float]
    all_seconds: list[float]  # every timed step of every repeat
    top_ops: list[tuple[str, float, float]]


def measure(name: str, build, params, bf16: bool, warmup: int, steps: int, repeats: int) -> Measured:
    """FLOPs of each of the warm-up + `steps` steps, then `repeats` timed runs of them; the warm-up steps dropped."""
    print(f"\n{name}: counting FLOPs of {warmup + steps} steps", flush=True)
    counted = train_steps(build, params, bf16, warmup + steps, StepMeter(count=True))
    runs = []
    for repeat in range(repeats):
        print(f"{name}: timing run {repeat + 1} of {repeats}", flush=True)
        profile_step = warmup + steps + 1 if repeat == 0 else None
        total = warmup + steps + (profile_step is not None)
        runs.append(train_steps(build, params, bf16, total, StepMeter(profile_step=profile_step)))
    timed = slice(warmup, warmup + steps)
    return Measured(
        name=name,
        dtype="bf16" if bf16 else "fp32",
        flops=counted.flops[timed],
        seconds=[min(each) for each in zip(*(run.seconds[timed] for run in runs))],
        loop_seconds=[min(each) for each in zip(*(run.loop_seconds[timed] for run in runs))],
        all_seconds=[s for run in runs for s in run.seconds[timed]],
        top_ops=runs[0].top_ops,
    )


# ---------------------------------------------------------------- 3. the table


def table(results: list[Measured], peaks: dict[str, float]) -> str:
    """One line per measured stage setting: GFLOP per step, best and median step seconds, GFLOP/s, share of peak."""
    header = (
        f"{'stage':<34}{'dtype':>6}{'GFLOP/step':>12}{'best s':>9}{'median s':>10}{'loop s':>9}"
        f"{'GFLOP/s':>9}{'peak':>7}{'of peak':>9}"
    )
    lines = [header]
    for r in results:
        rate = sum(r.flops) / sum(r.seconds) / 1e9
        lines.append(
            f"{r.name:<34}{r.dtype:>6}{statistics.mean(r.flops) / 1e9:>12.1f}{statistics.mean(r.seconds):>9.2f}"
            f"{statistics.median(r.all_seconds):>10.2f}{statistics.mean(r.loop_seconds):>9.2f}"
            f"{rate:>9.1f}{peaks[r.dtype]:>7.0f}{rate / peaks[r.dtype]:>9.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per stage setting")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of the same steps; the best counts")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")
    from transformers.utils import logging as transformers_logging

    from vdr.config.params import load_params

    transformers_logging.set_verbosity_error()  # the stages' warnings and loading bars, once per built trainer
    transformers_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    params = load_params(args.params)

    # 1. The machine's achievable peak, per dtype
    peaks = peak(repeats=5)

    # 2. The training stages: the embedder with bf16 off and on, the reranker as params.yaml sets it
    chosen = {True: " (params)", False: ""}
    embedder_bf16 = params.train_embedder.bf16
    settings = [
        (f"train_embedder bf16 off{chosen[not embedder_bf16]}", embedder_trainer, False),
        (f"train_embedder bf16 on{chosen[embedder_bf16]}", embedder_trainer, True),
        (f"train_reranker bf16 {'on' if params.train_reranker.bf16 else 'off'} (params)", reranker_trainer, None),
    ]
    results = []
    for name, build, bf16 in settings:
        bf16 = params.train_reranker.bf16 if bf16 is None else bf16
        result = measure(name, build, params, bf16, args.warmup, args.steps, args.repeats)
        results.append(result)
        print(f"{name}: top operators of one step by self CPU time")
        for operator, milliseconds, share in result.top_ops:
            print(f"  {operator:<48}{milliseconds:>9.1f} ms{share:>7.1%}")

    # 3. One table
    print(f"\n{torch.get_num_threads()} threads; {args.steps} timed steps after {args.warmup} warm-up, ", end="")
    print(f"best of {args.repeats} runs; times on a shared machine are noisy")
    print(table(results, peaks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
