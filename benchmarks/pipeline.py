"""Time every stage of the pipeline and report its peak memory; optionally against another revision, in one run.

    python benchmarks/pipeline.py                       # all stages, in dvc.yaml order
    python benchmarks/pipeline.py render mine           # only these
    python benchmarks/pipeline.py --compare v1.0        # the working tree, then the code and params.yaml of a git
                                                        # revision, side by side with the ratio (this / reference)

Each stage runs through DVC (`dvc repro --force --single-item STAGE`), so outputs and dvc.lock stay consistent.
Peak RSS is the largest resident set of the stage's process tree (from wait4). With --compare, the reference runs
first in a temporary `git worktree` of the revision (its own code, params.yaml and dvc.yaml; its DVC cache apart),
then the working tree, so both are measured on the same machine in the same state; times on a shared machine are
noisy, and the ratios are what to read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def run_stage(stage: str, cwd: Path, env: dict) -> tuple[float, float, int]:
    """(wall s, peak RSS GB, exit code) of `dvc repro --force --single-item STAGE`; its output goes to a file (a
    pipe nobody reads would fill up and stall the stage), whose end is printed when the stage fails."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["dvc", "repro", "--force", "--single-item", stage], cwd=cwd, env=env, stdout=log, stderr=log
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024 / 1024, code


def run_pipeline(root: Path, stages: list[str], label: str, env: dict) -> dict[str, tuple[float, float]]:
    """{stage: (wall s, peak RSS GB)} for the stages of `root`'s dvc.yaml, in its order."""
    known = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    chosen = [s for s in known if not stages or s in stages]
    print(f"{label}: {' '.join(chosen)}", flush=True)
    results = {}
    for stage in chosen:
        seconds, gigabytes, code = run_stage(stage, root, env)
        results[stage] = (seconds, gigabytes)
        print(f"  {stage:<16}{seconds:>9.1f} s{gigabytes:>8.2f} GB", flush=True)
        if code != 0:
            sys.exit(f"{label}: stage {stage} failed with exit code {code}")
    return results


def table(current: dict, reference: dict | None) -> str:
    header = f"{'stage':<16}{'wall s':>9}{'peak RSS GB':>13}"
    if reference is not None:
        header += f"{'ref wall s':>12}{'ref GB':>8}{'wall ratio':>12}"
    lines = [header]
    stages = list(dict.fromkeys([*(reference or {}), *current]))
    for stage in [*stages, "total"]:
        if stage == "total":
            now = (sum(v[0] for v in current.values()), max((v[1] for v in current.values()), default=0.0))
            ref = reference and (sum(v[0] for v in reference.values()), max(v[1] for v in reference.values()))
        else:
            now, ref = current.get(stage), (reference or {}).get(stage)
        line = f"{stage:<16}" + (f"{now[0]:>9.1f}{now[1]:>13.2f}" if now else f"{'-':>9}{'-':>13}")
        if reference is not None:
            line += f"{ref[0]:>12.1f}{ref[1]:>8.2f}" if ref else f"{'-':>12}{'-':>8}"
            line += f"{now[0] / ref[0]:>12.2f}" if now and ref else f"{'-':>12}"
        lines.append(line)
    return "\n".join(lines) + f"\n({os.cpu_count()} CPU cores)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="*", help="only these stages (default: all, in dvc.yaml order)")
    parser.add_argument("--compare", metavar="REV", help="a git revision to measure too, as the reference")
    args = parser.parse_args(argv)
    root = Path.cwd()
    known = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    unknown = [s for s in args.stages if s not in known]
    if unknown:
        sys.exit(f"unknown stage(s) {unknown}; dvc.yaml has {known}")

    reference = None
    if args.compare:
        with tempfile.TemporaryDirectory(prefix="vdr-reference-") as folder:
            worktree = Path(folder) / "reference"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.compare], check=True)
            try:
                env = dict(os.environ, PYTHONPATH=str(worktree))  # its own vdr/, not the installed working tree's
                reference = run_pipeline(worktree, args.stages, f"reference {args.compare}", env)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], check=False)
                shutil.rmtree(worktree, ignore_errors=True)
    current = run_pipeline(root, args.stages, "working tree", dict(os.environ))
    print(table(current, reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
