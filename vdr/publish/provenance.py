"""Where a published model came from: the git commit (and whether the code differs from it), the params that differ
from it, the DVC experiment and hashes, and the data's own metrics; `Provenance` holds them for the cards."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# written by a pipeline run, not by a person: params.yaml (its differences from the commit are the card's -S
# overrides), dvc.lock (the card's hashes), and the .gitignore files DVC keeps for its outputs
RUN_WRITTEN = ("params.yaml", "dvc.lock")


@dataclass(frozen=True)
class Provenance:
    """What every card says about where its model came from."""

    commit: str  # HEAD's sha; `unknown` outside git
    experiment: str = "workspace"  # the DVC experiment (DVC_EXP_NAME)
    overrides: dict = field(default_factory=dict)  # params that differ from the commit's params.yaml
    hashes: dict = field(default_factory=dict)  # pipeline_hashes
    fetch_metrics: dict = field(default_factory=dict)  # metrics/fetch.json: where the data came from
    generate_metrics: dict = field(default_factory=dict)  # metrics/generate.json: who wrote the queries
    uncommitted: tuple[str, ...] = ()  # tracked files that differ from the commit (publish.allow_dirty)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def git_commit() -> str:
    """HEAD's sha; `unknown` outside git."""
    try:
        return git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pipeline_outputs(dvc_yaml: Path) -> set[str]:
    """What a pipeline run writes among the files git tracks: params.yaml, dvc.lock and every stage's outputs
    (metrics, plots and reports kept in git with `cache: false`)."""
    outputs = set(RUN_WRITTEN)
    if not dvc_yaml.exists():
        return outputs
    for stage in (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}).values():
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key, []) or []:
                outputs.add(next(iter(out)) if isinstance(out, dict) else str(out))
    return outputs


def uncommitted_changes(outputs: set[str]) -> tuple[str, ...]:
    """The tracked files that differ from HEAD, besides what a pipeline run writes (`outputs`, pipeline_outputs) and
    the .gitignore files DVC keeps for its outputs: the code and configuration the commit does not hold. Empty outside
    git."""
    try:
        entries = git("status", "--porcelain=v1", "--untracked-files=no", "-z").split("\0")
    except (OSError, subprocess.CalledProcessError):
        return ()
    changed, skip = [], False
    for entry in entries:
        if skip or not entry:  # a rename's or copy's second path is its old name
            skip = False
            continue
        status, path = entry[:2], entry[3:]
        skip = "R" in status or "C" in status
        changed.append(path)
    return tuple(
        path
        for path in sorted(changed)
        if Path(path).name != ".gitignore"
        and not any(path == out or path.startswith(out.rstrip("/") + "/") for out in outputs)
    )


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_params(params_path: str, commit: str) -> dict:
    """{key: value} for each parameter that differs from params.yaml in the git commit (what `dvc exp run -S` set),
    publish's own keys left out."""
    try:
        committed = git("show", f"{commit}:{params_path}")
    except (OSError, subprocess.CalledProcessError):
        return {}
    before = flatten(yaml.safe_load(committed) or {})
    now = flatten(yaml.safe_load(Path(params_path).read_text()) or {})
    return {key: value for key, value in now.items() if before.get(key) != value and not key.startswith("publish.")}


def pipeline_hashes(lock_path: Path) -> dict:
    """A digest of dvc.lock's stages before publish, and the DVC hashes of the data and models this model came from.

    The publish stage's own entry is left out of the digest: it is written after this card, and leaving
    it out keeps the card (and so the upload) the same when the same model is published again.
    """
    if not lock_path.exists():
        return {}
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    upstream = {name: stage for name, stage in stages.items() if name != "publish"}
    digest = hashlib.sha256(json.dumps(upstream, sort_keys=True).encode()).hexdigest()
    hashes = {"dvc.lock sha256 (stages before publish)": digest}
    for stage in upstream.values():
        for out in stage.get("outs", []):
            if out["path"].startswith(("data/", "models/")):
                hashes[out["path"]] = out.get("md5", "")
    return hashes
