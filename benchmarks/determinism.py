"""What is bit-identical across CPUs, and what is not: the same computation under the settings that differ between
machines (thread count, the instruction set the math libraries pick), compared bit for bit in one run.

    python benchmarks/determinism.py             # 200 held-out pages of data/pages/eval, the cpu profile's embedder

Each variant runs in its own process, so that the environment variables the libraries read at start take effect:
  threads=N              torch.set_num_threads(N): how a reduction is split across threads
  ONEDNN_MAX_CPU_ISA     the newest instruction set oneDNN (bf16 matmuls) may use: AVX2 is a CPU without AVX-512
  MKL_CBWR               the code path MKL (float32 matmuls) takes: AVX2 is a CPU without AVX-512
For each, three computations: the embedder's float32 page embeddings, the same under bf16 autocast, and the
weights after 5 training steps of the embedder (float32 and bf16 autocast). It prints the largest difference from
the default (this machine, every core) and whether the bytes are the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

VARIANTS = {
    "default": {},
    "threads=1": {"VDR_THREADS": "1"},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL_CBWR=AVX2": {"MKL_CBWR": "AVX2"},
}


def compute(pages: int, output: Path) -> None:
    """One variant: embeddings (float32, bf16 autocast) and weights after a few steps, saved to `output`."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from vdr.config.params import load_params
    from vdr.data.evalset import EvalSet
    from vdr.errors import fields_under
    from vdr.models.loading import load_embedder

    if "VDR_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["VDR_THREADS"]))
    params = load_params("params.yaml")
    texts = EvalSet.load("data/pages/eval").documents("text")[:pages]
    results = {}
    with fields_under("models"):
        model = load_embedder(params.models.embedder, params.models, max_seq_length=128)
    results["encode float32"] = model.encode_document(texts, batch_size=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        results["encode bf16 autocast"] = model.encode_document(texts, batch_size=32)
    for precision in ("float32", "bf16 autocast"):
        torch.manual_seed(0)
        with fields_under("models"):
            model = load_embedder(params.models.embedder, params.models, max_seq_length=128)
        model.train()
        loss = MultipleNegativesRankingLoss(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for step in range(5):
            batch = texts[step * 16 : step * 16 + 16]
            queries = [text.split(".")[0] for text in batch]
            features = [model.tokenize(queries), model.tokenize(batch)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "float32"):
                value = loss(features, None)
            value.backward()
            optimizer.step()
            optimizer.zero_grad()
        weights = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()
        results[f"train {precision}"] = weights
    np.savez(output, **{key: np.asarray(value, dtype=np.float32) for key, value in results.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--variant-output", type=Path, help=argparse.SUPPRESS)  # a variant's own process
    args = parser.parse_args(argv)
    if args.variant_output:
        compute(args.pages, args.variant_output)
        return 0

    folder = Path("benchmarks") / ".determinism"
    folder.mkdir(exist_ok=True)
    outputs = {}
    for name, env in VARIANTS.items():
        outputs[name] = folder / f"{hashlib.sha256(name.encode()).hexdigest()[:8]}.npz"
        command = [sys.executable, __file__, "--pages", str(args.pages), "--variant-output", str(outputs[name])]
        subprocess.run(command, env=os.environ | env, check=True, capture_output=True)
    default = np.load(outputs["default"])
    report = {}
    for name in VARIANTS:
        variant = np.load(outputs[name])
        report[name] = {
            key: "identical"
            if variant[key].tobytes() == default[key].tobytes()
            else f"max |diff| {np.abs(variant[key] - default[key]).max():.2e}"
            for key in default.files
        }
    print(json.dumps(report, indent=2))
    for path in outputs.values():
        path.unlink()
    folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
