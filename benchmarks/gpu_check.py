"""GPU check of the `blog` profile, in under 8 minutes on one GPU.

    python benchmarks/gpu_check.py                 # every part
    python benchmarks/gpu_check.py --steps 24      # more steps for part 2
    python benchmarks/gpu_check.py --device cpu    # every code path on the CPU, the architecture scaled down

1. The tiny blog pipeline in bf16 on the GPU: a tiny random Qwen3-VL (tests/support/tiny_vlm.py) on a synthetic
   dataset in the Hub layout through the real stages (fetch from a local folder, render, mine given,
   train embedder, train reranker, evaluate, publish dry run), each stage's wall time printed.
2. Training throughput and peak GPU memory of a randomly initialised model with the published
   architecture of Qwen/Qwen3-VL-Embedding-2B (values below; nothing is downloaded) at the recipe's
   settings: batch 64, CachedMultipleNegativesRankingLoss(mini_batch_size=1) inside MatryoshkaLoss,
   bf16 weights + bf16, NO_DUPLICATES_HASHED, page images bounded to 784..360,000 pixels. Prints one
   summary line and the projected time of the full recipe (10,000 triplets, one epoch, plus the
   evaluator runs). A step budget (--budget-s) keeps it inside the time limit.
3. The same step with LoRA (r 16, alpha 32 on every linear layer of the language model, vision tower frozen:
   vdr/training/lora.py, as `train_embedder.lora` does it): samples/s and peak memory next to full finetuning.
4. Encoding throughput: pages per second on each visible device, batch 1 and batch 8.
Without a CUDA GPU it says so and exits 0. `--device cpu` runs the same code with the published architecture
scaled down (hidden size 64, 2 layers, a 2-block vision tower; SMOKE below) and two steps of batch 4, so a bug
in this script shows on the CPU (tests/test_gpu_check.py, part of the default test command), not in GPU minutes;
its figures mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support.tiny_vlm builds the random models

# Qwen/Qwen3-VL-Embedding-2B is built on Qwen3-VL-2B: its config.json values
ARCHITECTURE = {
    "text_config": {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "hidden_act": "silu",
        "max_position_embeddings": 262144,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
    },
    "vision_config": {
        "depth": 24,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_heads": 16,
        "hidden_act": "gelu_pytorch_tanh",
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": 2048,
        "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [5, 11, 17],
    },
    "tie_word_embeddings": True,
}
RECIPE = {
    "train_rows": 10_000,
    "batch_size": 64,
    "eval_runs": 12,
    "eval_queries": 300,
    "eval_pages": 1_500,
}  # eval: before, 10 during, after


def scaled_down(architecture: dict) -> dict:
    """The same architecture (attention layout, interleaved mRoPE, deepstack, tied embeddings) at toy size."""
    small = copy.deepcopy(architecture)
    small["text_config"].pop("vocab_size")  # the tokenizer's
    small["text_config"].update(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
    )
    small["text_config"]["rope_parameters"]["mrope_section"] = [2, 3, 3]  # sums to head_dim / 2
    small["vision_config"].update(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=64,
        num_position_embeddings=64,
        deepstack_visual_indexes=[0, 1],
    )
    return small


@dataclass(frozen=True)
class Scale:
    """What part 2 and 3 build and feed: the recipe on a GPU, a toy of it on the CPU."""

    architecture: dict
    batch_size: int
    matryoshka_dims: list
    page_size: tuple[int, int]
    max_pixels: int


RECIPE_SCALE = Scale(ARCHITECTURE, RECIPE["batch_size"], [2048, 1536, 1024, 512, 256, 128, 64], (850, 1100), 360000)
SMOKE = Scale(scaled_down(ARCHITECTURE), 4, [64, 32], (160, 208), 64 * 64 * 4)
MIN_PIXELS = 784


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak_memory(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def release(device: str) -> None:
    """Free what a finished part held, so the next part's peak memory is its own."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def peak_memory_gib(device: str) -> float:
    """Peak GPU memory allocated since the last reset; on the CPU the process's peak RSS (never reset)."""
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def attention(device: str) -> str:
    import importlib.util

    return "flash_attention_2" if device == "cuda" and importlib.util.find_spec("flash_attn") else "sdpa"


def tiny_pipeline(workdir: Path, device: str) -> float:
    """Part 1: the real stages, in order, with the tiny blog params in bf16; returns the total seconds."""
    from tests.support.tiny_vlm import build, synthetic_dataset, tiny_blog_params
    from vdr.config.profiles import compose

    for folder in ("stages", "vdr"):
        shutil.copytree(REPO / folder, workdir / folder, ignore=shutil.ignore_patterns("__pycache__"))
    embedder, reranker = build(workdir / "tiny")
    synthetic_dataset(workdir / "dataset")
    params = tiny_blog_params(compose("blog"), str(embedder), str(reranker), "dataset", bf16=True)
    params["models"]["model_kwargs"]["attn_implementation"] = attention(device)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(workdir))
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    total = 0.0
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage, spec in pipeline.items():  # dvc.yaml lists the stages in an order that runs, with their commands
        command = [sys.executable, *shlex.split(spec["cmd"])[1:]]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        total += seconds
        print(f"  {stage:<15}{seconds:7.1f} s", flush=True)
        if result.returncode != 0:
            raise SystemExit(f"stage {stage} failed on the {device}:\n{result.stderr[-4000:]}")
    print("  " + (workdir / "reports/results.md").read_text().replace("\n", "\n  "))
    return total


def pages(scale: Scale, count: int, offset: int):
    from tests.support.tiny_vlm import page_image

    return [page_image(offset + n, *scale.page_size) for n in range(count)]


def random_model(workdir: Path, scale: Scale, device: str) -> Path:
    """A randomly initialised model of `scale.architecture`, bf16, saved with the Qwen2-VL image processor at the
    recipe's pixel bounds (nothing is downloaded)."""
    import torch
    from transformers import Qwen3VLModel

    from tests.support.tiny_vlm import build_config, build_processor, build_tokenizer

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer, min_pixels=MIN_PIXELS, max_pixels=scale.max_pixels)
    folder = workdir / "qwen3-vl-random"
    with torch.device(device):
        Qwen3VLModel(build_config(tokenizer, scale.architecture)).to(torch.bfloat16).save_pretrained(folder)
    processor.save_pretrained(folder)
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def load_embedder(folder: Path, device: str):
    """The published embedder's module stack: Transformer -> last-token Pooling -> Normalize, bf16 weights."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    kwargs = {"dtype": "bfloat16", "attn_implementation": attention(device.split(":")[0])}
    transformer = Transformer(str(folder), model_kwargs=kwargs)
    return SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "lasttoken"), Normalize()], device=device
    )


LORA = {"r": 16, "alpha": 32, "target_modules": "all-linear"}


def throughput(
    workdir: Path, folder: Path, scale: Scale, device: str, steps: int, budget_s: float, lora: dict | None = None
) -> dict:
    """Parts 2 and 3: the recipe's training step on a random model of the published architecture; with `lora`, the
    LoRA adapters of vdr/training/lora.py on it and the vision tower frozen, as train_embedder sets them up."""
    from types import SimpleNamespace

    from datasets import Dataset, Features, Image, Value
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss, MatryoshkaLoss
    from transformers import TrainerCallback

    from vdr.config.training import Lora
    from vdr.training.lora import adapter_trainer, prepare

    model = load_embedder(folder, device)
    print(
        f"  random model: {sum(p.numel() for p in model.parameters()) / 1e6:,.1f} M parameters, "
        f"embedding size {model.get_embedding_dimension()}"
    )
    trainer_class = SentenceTransformerTrainer
    if lora is not None:
        prepare(model, SimpleNamespace(dropout=None, lora=Lora(**lora), freeze_vision=True), str(folder), "gpu_check")
        trainer_class = adapter_trainer(SentenceTransformerTrainer)

    rows = scale.batch_size * steps
    features = Features({"anchor": Value("string"), "positive": Image(), "negative": Image()})
    data = Dataset.from_dict(
        {
            "anchor": [f"what does report {n} say?" for n in range(rows)],
            "positive": pages(scale, rows, 0),
            "negative": pages(scale, rows, 100_000),
        },
        features=features,
    )
    loss = MatryoshkaLoss(
        model,
        CachedMultipleNegativesRankingLoss(model, mini_batch_size=1),
        matryoshka_dims=scale.matryoshka_dims,
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir / "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=scale.batch_size,
        learning_rate=2e-5,
        warmup_ratio=0.1,
        bf16=True,
        batch_sampler=BatchSamplers.NO_DUPLICATES_HASHED,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=42,
        use_cpu=device == "cpu",
    )

    class Clock(TrainerCallback):
        def __init__(self):
            self.times, self.started = [], time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            self.times.append(time.perf_counter())
            if self.times[-1] - self.started > budget_s and len(self.times) >= 4:
                control.should_training_stop = True

    clock = Clock()
    reset_peak_memory(device)
    trainer = trainer_class(model=model, args=args, train_dataset=data, loss=loss, callbacks=[clock])
    trainer.train()
    measured = clock.times[2:] if len(clock.times) > 3 else clock.times  # the first steps warm up kernels and caches
    if len(measured) > 1:
        step_s = (measured[-1] - measured[0]) / (len(measured) - 1)
    else:  # one step: timed from the start
        step_s = measured[0] - clock.started
    result = {
        "steps": len(clock.times),
        "step_s": step_s,
        "samples_per_s": scale.batch_size / step_s,
        "peak_gib": peak_memory_gib(device),
    }
    del trainer, loss, model
    release(device)
    return result


def visible_devices(device: str) -> list[str]:
    import torch

    return [f"cuda:{n}" for n in range(torch.cuda.device_count())] if device == "cuda" else ["cpu"]


def encoding(folder: Path, scale: Scale, device: str, count: int = 16) -> dict[str, dict[int, float]]:
    """Part 3: seconds per page image encoded on each visible device, at batch 1 (the evaluator's) and 8."""
    sample = pages(scale, count, 200_000)
    seconds = {}
    for name in visible_devices(device):
        model = load_embedder(folder, name)
        model.eval()
        seconds[name] = {}
        for batch_size in (1, 8):
            model.encode_document(sample[:batch_size], batch_size=batch_size)  # warm up kernels
            synchronize(device)
            started = time.perf_counter()
            model.encode_document(sample, batch_size=batch_size)
            synchronize(device)
            seconds[name][batch_size] = (time.perf_counter() - started) / len(sample)
            print(f"  {name} batch {batch_size}: {1 / seconds[name][batch_size]:.1f} pages/s", flush=True)
        del model
        release(device)
    return seconds


def nvidia_driver() -> str | None:
    """The host's NVIDIA driver version as nvidia-smi prints it (580.65.06), or None without nvidia-smi."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def too_old(driver: str, major: int) -> bool:
    """Whether a driver version such as 575.57.08 is below `major`."""
    return int(driver.split(".")[0]) < major


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16, help="training steps measured in part 2 (batch 64 each)")
    parser.add_argument("--budget-s", type=float, default=150, help="stop part 2's training after this many seconds")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: every code path with the architecture scaled down (a test of this script, not a measurement)",
    )
    args = parser.parse_args()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing to check (run it on a GPU machine)")
        return 0
    if args.device == "cuda":
        driver = nvidia_driver()
        print(f"NVIDIA driver {driver or 'unknown (no nvidia-smi)'}, torch built for CUDA {torch.version.cuda}")
        if driver and torch.version.cuda and int(torch.version.cuda.split(".")[0]) >= 13 and too_old(driver, 580):
            sys.exit(
                f"gpu_check: NVIDIA driver {driver} is older than 580, which CUDA {torch.version.cuda} (the image's "
                "torch) needs; update the host's driver to 580 or newer"
            )
    device, scale = args.device, RECIPE_SCALE if args.device == "cuda" else SMOKE
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (scaled-down architecture)"
    print(f"gpu_check on {name} (attention: {attention(device)})")
    with tempfile.TemporaryDirectory(prefix="vdr-gpu-check-") as temporary:
        workdir = Path(temporary)
        if not args.skip_pipeline:
            print(f"1. tiny blog pipeline, bf16 on the {device}")
            (workdir / "pipeline").mkdir()
            pipeline_s = tiny_pipeline(workdir / "pipeline", device)
            print(f"  all stages: {pipeline_s:.0f} s")
        folder = random_model(workdir, scale, device)
        print(
            f"2. recipe step on a random Qwen3-VL-Embedding-2B-shaped model ({args.steps} steps of {scale.batch_size})"
        )
        result = throughput(workdir, folder, scale, device, args.steps, args.budget_s)
        print(f"3. the same step with LoRA {LORA}, vision tower frozen")
        lora = throughput(workdir, folder, scale, device, args.steps, args.budget_s, lora=LORA)
        print("4. page encoding throughput per device")
        encode_s = encoding(folder, scale, device)

    page_s = next(iter(encode_s.values()))[1]
    steps_per_epoch = math.ceil(RECIPE["train_rows"] / RECIPE["batch_size"])
    train_h = steps_per_epoch * result["step_s"] / 3600
    eval_h = (
        RECIPE["eval_runs"] * (RECIPE["eval_pages"] + RECIPE["eval_queries"]) * page_s / 3600
    )  # queries counted as pages: an upper bound
    per_device = ", ".join(f"{device_name} {1 / s[8]:.1f}" for device_name, s in encode_s.items())
    print(
        f"gpu_check: {name}: {result['samples_per_s']:.2f} samples/s "
        f"({result['step_s']:.1f} s/step of {scale.batch_size} over {result['steps']} steps), "
        f"peak memory {result['peak_gib']:.1f} GiB, "
        f"page encode {page_s * 1000:.0f} ms at batch 1, pages/s at batch 8: {per_device}; "
        f"projected full recipe: {steps_per_epoch} steps = {train_h:.2f} h training + "
        f"{eval_h:.2f} h evaluator runs = {train_h + eval_h:.2f} h; "
        f"LoRA: {lora['samples_per_s']:.2f} samples/s ({lora['samples_per_s'] / result['samples_per_s']:.2f}x full), "
        f"peak memory {lora['peak_gib']:.1f} GiB ({lora['peak_gib'] / result['peak_gib']:.2f}x full)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
