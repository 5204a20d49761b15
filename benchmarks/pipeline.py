"""Time every stage of the pipeline and report its peak memory.

    python benchmarks/pipeline.py             # all stages, in dvc.yaml order
    python benchmarks/pipeline.py render mine # only these

Each stage runs through DVC (`dvc repro --force --single-item STAGE`), so outputs and dvc.lock stay
consistent. Peak RSS is the largest resident set of the stage's process tree (from wait4).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


def run_stage(stage: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    process = subprocess.Popen(
        ["dvc", "repro", "--force", "--single-item", stage], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    return seconds, usage.ru_maxrss / 1024 / 1024, os.waitstatus_to_exitcode(status)


def main(stages: list[str]) -> int:
    all_stages = list(yaml.safe_load(Path("dvc.yaml").read_text())["stages"])
    unknown = [s for s in stages if s not in all_stages]
    if unknown:
        sys.exit(f"unknown stage(s) {unknown}; dvc.yaml has {all_stages}")
    total, peak = 0.0, 0.0
    print(f"{'stage':<16}{'wall s':>9}{'peak RSS GB':>13}")
    for stage in stages or all_stages:
        seconds, gigabytes, code = run_stage(stage)
        total, peak = total + seconds, max(peak, gigabytes)
        print(f"{stage:<16}{seconds:>9.1f}{gigabytes:>13.2f}", flush=True)
        if code != 0:
            print(f"stage {stage} failed with exit code {code}", file=sys.stderr)
            return code
    print(f"{'total':<16}{total:>9.1f}{peak:>13.2f}   ({os.cpu_count()} CPU cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
