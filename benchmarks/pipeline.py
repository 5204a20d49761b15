"""Time every stage of the pipeline and report its peak memory; optionally against another revision, in one run.

    python benchmarks/pipeline.py                       # all stages, in dvc.yaml order
    python benchmarks/pipeline.py render mine           # only these
    python benchmarks/pipeline.py --compare v1.0        # the code and params.yaml of a git revision, then the
                                                        # working tree, side by side with the ratio (this / reference)
    python benchmarks/pipeline.py --isa avx2,native     # both instruction sets in one run: first as on a CPU with
                                                        # AVX2 only (most laptops), then as this CPU is
    python benchmarks/pipeline.py --compare v1.0 --reference-set avx2:encode.bf16=false   # the reference with a
                                                        # params override (repeatable; ISA: limits it to one
                                                        # instruction set), e.g. float32 where it forced bf16

Each stage runs through DVC (`dvc repro --force --single-item STAGE`), so outputs and dvc.lock stay consistent.
Peak RSS is the largest resident set of the stage's process tree (from wait4). With --compare, the reference runs
first in a temporary `git worktree` of the revision (its own code, params.yaml and dvc.yaml; its DVC cache apart),
then the working tree, so both are measured on the same machine in the same state; times on a shared machine are
noisy, and the ratios are what to read.

`--isa avx2` runs every process with ONEDNN_MAX_CPU_ISA=AVX2 and ATEN_CPU_CAPABILITY=avx2: on a CPU with AVX512 or
AMX it computes as an AVX2-only CPU does, emulated bf16 included (`bf16: auto` then resolves to float32, as it does
there); the capability torch reports under each setting is printed with its table. The working tree's outputs and
dvc.lock are those of the last pass.
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

from vdr.config.precision import AVX2_ONLY

INSTRUCTION_SETS = {"native": {}, "avx2": AVX2_ONLY}  # --isa NAME -> what the stage processes get in their environment


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


def torch_capability(env: dict) -> str:
    """What torch computes with under `env` (AVX512, AVX2, ...), asked in a fresh process as the stages would."""
    command = [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.strip()


def override_params(params_file: Path, assignments: list[str]) -> None:
    """Set KEY=VALUE (dotted key, YAML value) in a params.yaml, as `dvc exp run -S` would; the key must exist."""
    params = yaml.safe_load(params_file.read_text())
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        *parents, last = key.split(".")
        section = params
        for part in parents:
            section = section.get(part) if isinstance(section, dict) else None
        if not sep or not isinstance(section, dict) or last not in section:
            sys.exit(f"--reference-set {assignment}: give KEY=VALUE with a key {params_file.name} has")
        section[last] = yaml.safe_load(value)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def overrides_for(isa: str, assignments: list[str]) -> list[str]:
    """The KEY=VALUE overrides that apply under `isa`: those without a prefix, and those prefixed `isa:`."""
    chosen = []
    for assignment in assignments:
        prefix, sep, rest = assignment.partition(":")
        if not sep or "=" in prefix:  # no ISA prefix (a value may hold a colon)
            chosen.append(assignment)
        elif prefix == isa:
            chosen.append(rest)
        elif prefix not in INSTRUCTION_SETS:
            sys.exit(f"--reference-set {assignment}: {prefix!r} is not an instruction set of {list(INSTRUCTION_SETS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="*", help="only these stages (default: all, in dvc.yaml order)")
    parser.add_argument("--compare", metavar="REV", help="a git revision to measure too, as the reference")
    parser.add_argument(
        "--reference-set",
        action="append",
        default=[],
        metavar="[ISA:]KEY=VALUE",
        help="a params override for the reference, under every --isa or only the one named",
    )
    parser.add_argument(
        "--isa", default="native", help=f"comma-separated, run in this order: {list(INSTRUCTION_SETS)}"
    )
    args = parser.parse_args(argv)
    isas = args.isa.split(",")
    if not set(isas) <= set(INSTRUCTION_SETS):
        sys.exit(f"--isa {args.isa}: choose from {list(INSTRUCTION_SETS)}")
    if args.reference_set and not args.compare:
        sys.exit("--reference-set applies to the --compare revision; give --compare REV")
    root = Path.cwd()
    known = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    unknown = [s for s in args.stages if s not in known]
    if unknown:
        sys.exit(f"unknown stage(s) {unknown}; dvc.yaml has {known}")

    tables = []
    for isa in isas:
        env = dict(os.environ, **INSTRUCTION_SETS[isa])
        heading = f"--isa {isa} (torch computes with {torch_capability(env)})"
        print(heading, flush=True)
        reference = None
        if args.compare:
            with tempfile.TemporaryDirectory(prefix="vdr-reference-") as folder:
                worktree = Path(folder) / "reference"
                subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.compare], check=True)
                try:
                    overrides = overrides_for(isa, args.reference_set)
                    override_params(worktree / "params.yaml", overrides)
                    reference_env = dict(env, PYTHONPATH=str(worktree))  # its own vdr/, not the working tree's
                    label = " ".join([f"reference {args.compare}", *(f"-S {a}" for a in overrides)])
                    reference = run_pipeline(worktree, args.stages, label, reference_env)
                finally:
                    subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], check=False)
                    shutil.rmtree(worktree, ignore_errors=True)
        current = run_pipeline(root, args.stages, "working tree", env)
        tables.append(f"{heading}\n{table(current, reference)}")
        print(tables[-1], flush=True)
    if len(tables) > 1:
        print("\n\n".join(["every instruction set:", *tables]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
