"""Where a published model came from: the git commit, the params that differ from it, the DVC hashes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml


def git_commit() -> str:
    """HEAD's sha, with `-dirty` when tracked files differ from it; `unknown` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_params(params_path: str, commit: str) -> list[str]:
    """`-S key=value` for each parameter that differs from params.yaml in the git commit
    (what `dvc exp run -S` set)."""
    try:
        committed = subprocess.run(
            ["git", "show", f"{commit.removesuffix('-dirty')}:{params_path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    before = flatten(yaml.safe_load(committed) or {})
    now = flatten(yaml.safe_load(Path(params_path).read_text()) or {})
    return [
        f"-S '{key}={json.dumps(value)}'"
        for key, value in now.items()
        if before.get(key) != value and not key.startswith("publish.")
    ]


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
