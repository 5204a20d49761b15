"""Throwaway git + DVC repositories holding this project's pipeline, and running commands in them.

env = stage_environment()                                  # this interpreter's dvc and python first on PATH, offline
repo = project_repo(tmp_path, env, params=tiny_params())   # stages/, vdr/, dvc.yaml, ... committed
output = run(["dvc", "repro"], repo, env)
ran_stages(output)                                         # {"fetch", "render", ...}
mine = copy_repo(repo, tmp_path / "mine")                  # the same repository, cache and outputs, to change
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("dvc.yaml", "requirements.lock", ".gitignore", ".dvcignore")
PROJECT_FOLDERS = ("stages", "vdr")
STAGES = tuple(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])  # every stage, in dvc.yaml order

# the cpu profile on a tiny slice: every stage runs in seconds
TINY = {
    "fetch": {"packages": ["networkx"], "num_train_pairs": 24, "num_eval_queries": 10, "num_eval_pages": 30},
    "render": {"workers": 1, "shard_size": 16},
    "mine": {"num_negatives": 2, "range_max": 10, "batch_size": 16},
    "mine_reranker": {"num_negatives": 2, "range_max": 10, "batch_size": 16},
    "train_embedder": {
        "max_train_samples": 16,
        "max_seq_length": 32,
        "batch_size": 8,
        "mini_batch_size": 8,
        "matryoshka_dims": [384, 64],
    },
    "train_reranker": {
        "max_train_queries": 8,
        "negatives_per_positive": 2,
        "eval_queries": 4,
        "max_length": 48,
        "batch_size": 8,
    },
    "evaluate": {"max_seq_length": 32, "top_k": 5, "dims": [384, 64], "batch_size": 16, "base_as_is": True},
}


def stage_environment() -> dict:
    """Environment for running stages and dvc as subprocesses with this interpreter's tools first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("HF_TOKEN", None)
    return env


def run(command: list[str], cwd: Path, env: dict) -> str:
    """Run a command; fail the test with the end of its output if it fails; its stdout + stderr."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def ran_stages(output: str) -> set[str]:
    """The stages `dvc repro` / `dvc exp run` ran, from its output."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def commit_all(repo: Path, env: dict, message: str) -> None:
    run(["git", "add", "-A"], repo, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", message], repo, env)


def copy_project(repo: Path, files=PROJECT_FILES, folders=PROJECT_FOLDERS) -> Path:
    """This project's pipeline files and code, copied into `repo`."""
    repo.mkdir(parents=True, exist_ok=True)
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    for folder in folders:
        shutil.copytree(REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def with_overrides(params: dict, overrides: dict) -> dict:
    """params with each section updated by overrides[section] (a shallow update per section)."""
    return {
        section: {**values, **overrides.get(section, {})} if isinstance(values, dict) else values
        for section, values in params.items()
    }


def project_repo(
    repo: Path, env: dict, params: dict | None = None, files=PROJECT_FILES, folders=PROJECT_FOLDERS
) -> Path:
    """A committed git + DVC repository with the project's pipeline and `params`
    (default: params.yaml as committed)."""
    copy_project(repo, files, folders)
    if params is None:
        shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    else:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    commit_all(repo, env, "project")
    return repo


def read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    """A TREC run file (qid Q0 docid rank score tag) as {qid: {docid: score}}; every line checked for six fields."""
    run_scores: dict[str, dict[str, float]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        assert len(fields) == 6 and fields[1] == "Q0", f"{path}:{number}: not a TREC run line: {line!r}"
        run_scores.setdefault(fields[0], {})[fields[2]] = float(fields[4])
    return run_scores


def tiny_params(overrides=TINY) -> dict:
    """params.yaml as committed, each section updated by overrides[section]."""
    return with_overrides(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)


def make_tiny_repo(repo, env, overrides=TINY):
    """A git + DVC repository with this project's pipeline and tiny params."""
    return project_repo(repo, env, tiny_params(overrides))


def copy_repo(repo: Path, to: Path) -> Path:
    """A copy of a git + DVC repository with its DVC cache and outputs, for a test that changes it: DVC hashes the
    copied outputs again and finds them up to date."""
    shutil.copytree(repo, to, symlinks=True)
    return to
