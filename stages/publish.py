"""publish: the finetuned embedder with a generated model card; pushed to the Hub only when asked.

    python stages/publish.py          (run by `dvc repro publish`)
    HF_TOKEN=... dvc exp run -S publish.push=true -S publish.repo_id=ORG/NAME publish

Writes models/published (the model folder plus README.md, the card). With publish.push: true the
folder is uploaded with huggingface_hub; otherwise nothing leaves the machine (a dry run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from vdr.hub import hub_model_id, hub_token, push_folder
from vdr.params import load_params
from vdr.report import results_table
from vdr.shards import atomic_path


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
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
    """`-S key=value` for each parameter that differs from params.yaml in the git commit (what `dvc exp run -S` set)."""
    try:
        committed = subprocess.run(["git", "show", f"{commit.removesuffix('-dirty')}:{params_path}"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    before = flatten(yaml.safe_load(committed) or {})
    now = flatten(yaml.safe_load(Path(params_path).read_text()) or {})
    return [f"-S '{key}={json.dumps(value)}'" for key, value in now.items() if before.get(key) != value and not key.startswith("publish.")]


def pipeline_hashes(lock_path: Path) -> dict:
    """A digest of dvc.lock's stages before publish, and the DVC hashes of the data and models this model came from.

    The publish stage's own entry is left out of the digest: it is written after this card, and leaving
    it out keeps the card (and so the upload) the same when the same model is published again.
    """
    if not lock_path.exists():
        return {}
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    upstream = {name: stage for name, stage in stages.items() if name != "publish"}
    hashes = {"dvc.lock sha256 (stages before publish)": hashlib.sha256(json.dumps(upstream, sort_keys=True).encode()).hexdigest()}
    for stage in upstream.values():
        for out in stage.get("outs", []):
            if out["path"].startswith(("data/", "models/")):
                hashes[out["path"]] = out.get("md5", "")
    return hashes


def data_line(fetch_metrics: dict) -> str:
    """The card's data sentence for a dataset fetched from the Hub or a local folder."""
    origin = f"`{fetch_metrics['dataset']}` at revision `{fetch_metrics['revision']}` (commit `{fetch_metrics.get('commit', 'unknown')}`)" if "dataset" in fetch_metrics else "a local dataset"
    return (
        f"Training and evaluation data: {origin}; {fetch_metrics['train_pairs']} training triplets, "
        f"evaluation on {fetch_metrics['eval_queries']} queries x {fetch_metrics['eval_pages']} pages.\n\n"
    )


def model_card(params, metrics: dict, fetch_metrics: dict, commit: str, experiment: str, overrides: list[str], hashes: dict) -> str:
    versions = fetch_metrics.get("package_versions", {})
    front_matter = {
        "library_name": "sentence-transformers",
        "pipeline_tag": "sentence-similarity",
        "tags": ["sentence-transformers", "visual-document-retrieval", "matryoshka", "dvc"],
        "language": ["en"],
        "license": "apache-2.0",
    }
    base_model = hub_model_id(params.models.embedder)
    if base_model:
        front_matter["base_model"] = base_model
    training = {
        "models": params.models.model_dump(),
        "mine": params.mine.model_dump(),
        "train_embedder": params.train_embedder.model_dump(),
        "train_reranker": params.train_reranker.model_dump(),
    }
    if params.models.page_input == "image":
        pages_sentence = "The model reads page screenshots."
    else:
        pages_sentence = "Pages were typeset to PDF and rasterised; text models read the page's text layer."
    if "source" in fetch_metrics:
        data_sentence = data_line(fetch_metrics)
    else:
        data_sentence = (
            "Queries and pages from the API docstrings of pinned packages ("
            + ", ".join(f"{name} {version}" for name, version in versions.items())
            + f"): the one-line summary is the query, the rest of the docstring the page; {fetch_metrics.get('train_pairs', '?')} training pairs, "
            f"evaluation on {fetch_metrics.get('eval_queries', '?')} queries over {fetch_metrics.get('eval_pages', '?')} pages of whole held-out sub-packages.\n\n"
        )
    reproduce = f"git checkout {commit.removesuffix('-dirty')} && " + (f"dvc exp run {' '.join(overrides)}" if overrides else "dvc repro")
    return (
        "---\n" + yaml.safe_dump(front_matter, sort_keys=False) + "---\n\n"
        "# Finetuned embedder for document-page retrieval\n\n"
        f"Finetuned from `{params.models.embedder}`" + (f" ([{base_model}](https://huggingface.co/{base_model}))" if base_model else "")
        + f" with MatryoshkaLoss over CachedMultipleNegativesRankingLoss on (query, page, hard negative) triplets. {pages_sentence}\n\n"
        "## Results on the held-out set\n\n"
        "NDCG@10, MRR@10 and Recall@10 (pytrec_eval, cosine similarity); the reranker rescores the finetuned embedder's top candidates. "
        "Then NDCG@10 at each Matryoshka dimension.\n\n" + results_table(metrics) + "\n"
        "## Data\n\n" + data_sentence
        + "## Training parameters\n\n```yaml\n" + yaml.safe_dump(training, sort_keys=False) + "```\n\n"
        "## Provenance\n\n"
        f"- git commit: `{commit}`\n"
        f"- DVC experiment: `{experiment}`\n" + "".join(f"- {key}: `{value}`\n" for key, value in hashes.items()) + "\n"
        f"Reproduce:\n\n```bash\n{reproduce}\n```\n"
    )


def set_truncate_dim(folder: Path, truncate_dim: int | None) -> None:
    """publish.truncate_dim becomes the published model's default output size (sentence-transformers reads it at load)."""
    if truncate_dim is None:
        return
    config_path = folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config["truncate_dim"] = truncate_dim
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def main(params_path: str, embedder: Path, metrics_path: Path, fetch_metrics_path: Path, output: Path) -> None:
    # 1. Parameters; fail before doing anything if a push cannot happen
    params = load_params(params_path)
    publish = params.publish
    if publish.push:
        hub_token()
    if not (embedder / "modules.json").exists():
        raise FileNotFoundError(f"{embedder} is not a saved sentence-transformers model; run `dvc repro train_embedder` first")

    # 2. The model folder plus its card, written atomically
    metrics = json.loads(metrics_path.read_text())
    fetch_metrics = json.loads(fetch_metrics_path.read_text()) if fetch_metrics_path.exists() else {}
    commit = git_commit()
    experiment = os.environ.get("DVC_EXP_NAME", "workspace")  # set by `dvc exp run`
    card = model_card(params, metrics, fetch_metrics, commit, experiment, changed_params(params_path, commit), pipeline_hashes(Path("dvc.lock")))
    with atomic_path(output) as folder:
        shutil.copytree(embedder, folder)
        set_truncate_dim(folder, publish.truncate_dim)
        (folder / "README.md").write_text(card)

    # 3. Push when asked: one commit, unchanged files are not sent again
    if not publish.push:
        print(f"dry run: {output} is ready; set publish.push: true and publish.repo_id to upload it")
        return
    url = push_folder(
        output,
        publish.repo_id,
        publish.private,
        commit_message=f"Publish DVC experiment {experiment} at git {commit}",
        commit_description=f"Model card and weights from the vdr pipeline (DVC experiment `{experiment}`, git commit `{commit}`).",
    )
    print(f"published {output} to {publish.repo_id}: {url}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--embedder", type=Path, default=Path("models/embedder"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    parser.add_argument("--fetch-metrics", type=Path, default=Path("metrics/fetch.json"))
    parser.add_argument("--output", type=Path, default=Path("models/published"))
    args = parser.parse_args()
    main(args.params, args.embedder, args.metrics, args.fetch_metrics, args.output)
