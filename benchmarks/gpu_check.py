"""GPU check of the `blog` profile, in under 8 minutes on one GPU.

    python benchmarks/gpu_check.py                 # both parts
    python benchmarks/gpu_check.py --steps 24      # more steps for part 2

1. The tiny blog pipeline in bf16 on the GPU: a tiny random Qwen3-VL (tests/support/tiny_vlm.py) on a synthetic
   dataset in the Hub layout through the real stages (fetch from a local folder, render, mine given,
   train embedder, train reranker, evaluate, publish dry run), each stage's wall time printed.
2. Training throughput and peak GPU memory of a randomly initialised model with the published
   architecture of Qwen/Qwen3-VL-Embedding-2B (values below; nothing is downloaded) at the recipe's
   settings: batch 64, CachedMultipleNegativesRankingLoss(mini_batch_size=1) inside MatryoshkaLoss,
   bf16 weights + bf16, NO_DUPLICATES_HASHED, page images bounded to 784..360,000 pixels. Prints one
   summary line and the projected time of the full recipe (10,000 triplets, one epoch, plus the
   evaluator runs). A step budget (--budget-s) keeps it inside the time limit.
Without a CUDA GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
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
DEVICE = "cuda"
PAGE_SIZE = (850, 1100)  # a letter page at 100 dpi; the processor bounds it to at most 360,000 pixels


def attention() -> str:
    import importlib.util

    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"


def tiny_pipeline(workdir: Path) -> float:
    """Part 1: the real stages, in order, with the tiny blog params in bf16; returns the total seconds."""
    from tests.support.tiny_vlm import build, synthetic_dataset, tiny_blog_params
    from vdr.profiles import compose

    for folder in ("stages", "vdr"):
        shutil.copytree(REPO / folder, workdir / folder, ignore=shutil.ignore_patterns("__pycache__"))
    embedder, reranker = build(workdir / "tiny")
    synthetic_dataset(workdir / "dataset")
    params = tiny_blog_params(compose("blog"), str(embedder), str(reranker), "dataset", bf16=True)
    params["models"]["model_kwargs"]["attn_implementation"] = attention()
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(workdir))
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
            raise SystemExit(f"stage {stage} failed on the GPU:\n{result.stderr[-4000:]}")
    print("  " + (workdir / "reports/results.md").read_text().replace("\n", "\n  "))
    return total


def pages(count: int, offset: int):
    from tests.support.tiny_vlm import page_image

    return [page_image(offset + n, *PAGE_SIZE) for n in range(count)]


def throughput(workdir: Path, steps: int, budget_s: float) -> dict:
    """Part 2: the recipe's training step on a random model of the published architecture."""
    import torch
    from datasets import Dataset, Features, Image, Value
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss, MatryoshkaLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import Qwen3VLModel, TrainerCallback

    from tests.support.tiny_vlm import build_config, build_processor, build_tokenizer

    # a random model with the published architecture, saved with the Qwen2-VL image processor at the recipe's bounds
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer, min_pixels=784, max_pixels=360000)
    config = build_config(tokenizer, ARCHITECTURE)
    folder = workdir / "qwen3-vl-2b-random"
    with torch.device(DEVICE):
        Qwen3VLModel(config).to(torch.bfloat16).save_pretrained(folder)
    processor.save_pretrained(folder)
    torch.cuda.empty_cache()
    transformer = Transformer(str(folder), model_kwargs={"dtype": "bfloat16", "attn_implementation": attention()})
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "lasttoken"), Normalize()], device=DEVICE
    )
    print(
        f"  random model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
        f"embedding size {model.get_embedding_dimension()}"
    )

    rows = RECIPE["batch_size"] * steps
    features = Features({"anchor": Value("string"), "positive": Image(), "negative": Image()})
    data = Dataset.from_dict(
        {
            "anchor": [f"what does report {n} say?" for n in range(rows)],
            "positive": pages(rows, 0),
            "negative": pages(rows, 100_000),
        },
        features=features,
    )
    loss = MatryoshkaLoss(
        model,
        CachedMultipleNegativesRankingLoss(model, mini_batch_size=1),
        matryoshka_dims=[2048, 1536, 1024, 512, 256, 128, 64],
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir / "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=RECIPE["batch_size"],
        learning_rate=2e-5,
        warmup_ratio=0.1,
        bf16=True,
        batch_sampler=BatchSamplers.NO_DUPLICATES_HASHED,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=42,
        use_cpu=DEVICE == "cpu",  # only for smoke-testing this script without a GPU
    )

    class Clock(TrainerCallback):
        def __init__(self):
            self.times, self.started = [], time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            if self.times[-1] - self.started > budget_s and len(self.times) >= 4:
                control.should_training_stop = True

    clock = Clock()
    torch.cuda.reset_peak_memory_stats()
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss, callbacks=[clock]).train()
    measured = clock.times[2:] if len(clock.times) > 3 else clock.times  # the first steps warm up kernels and caches
    step_s = (measured[-1] - measured[0]) / max(len(measured) - 1, 1)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30

    # evaluation cost: page images encoded at the evaluator's batch size 1
    model.eval()
    sample = pages(16, 200_000)
    model.encode_document(sample[:2], batch_size=1)
    torch.cuda.synchronize()
    started = time.perf_counter()
    model.encode_document(sample, batch_size=1)
    torch.cuda.synchronize()
    page_s = (time.perf_counter() - started) / len(sample)
    return {
        "steps": len(clock.times),
        "step_s": step_s,
        "samples_per_s": RECIPE["batch_size"] / step_s,
        "peak_gib": peak_gib,
        "page_encode_s": page_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16, help="training steps measured in part 2 (batch 64 each)")
    parser.add_argument("--budget-s", type=float, default=150, help="stop part 2's training after this many seconds")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing to check (run it on a GPU machine)")
        return 0
    device = torch.cuda.get_device_name(0)
    print(f"gpu_check on {device} (attention: {attention()})")
    with tempfile.TemporaryDirectory(prefix="vdr-gpu-check-") as temporary:
        workdir = Path(temporary)
        if not args.skip_pipeline:
            print("1. tiny blog pipeline, bf16 on the GPU")
            (workdir / "pipeline").mkdir()
            pipeline_s = tiny_pipeline(workdir / "pipeline")
            print(f"  all stages: {pipeline_s:.0f} s")
        print(f"2. recipe step on a random Qwen3-VL-Embedding-2B-shaped model ({args.steps} steps of 64)")
        result = throughput(workdir, args.steps, args.budget_s)

    steps_per_epoch = math.ceil(RECIPE["train_rows"] / RECIPE["batch_size"])
    train_h = steps_per_epoch * result["step_s"] / 3600
    eval_h = (
        RECIPE["eval_runs"] * (RECIPE["eval_pages"] + RECIPE["eval_queries"]) * result["page_encode_s"] / 3600
    )  # queries counted as pages: an upper bound
    print(
        f"gpu_check: {device}: {result['samples_per_s']:.2f} samples/s "
        f"({result['step_s']:.1f} s/step of 64 over {result['steps']} steps), "
        f"peak GPU memory {result['peak_gib']:.1f} GiB, "
        f"page encode {result['page_encode_s'] * 1000:.0f} ms at batch 1; "
        f"projected full recipe: {steps_per_epoch} steps = {train_h:.2f} h training + "
        f"{eval_h:.2f} h evaluator runs = {train_h + eval_h:.2f} h"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
