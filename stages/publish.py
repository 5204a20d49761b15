"""publish: the finetuned embedder with a generated model card; pushed to the Hub only when asked.

    python stages/publish.py          (run by `dvc repro publish`)
    HF_TOKEN=... dvc exp run -S publish.push=true -S publish.repo_id=ORG/NAME publish

Writes models/published (the model folder plus README.md, the card from vdr/card.py, and the
NDCG@10-by-dimension picture). With train_embedder.lora (merge: false) the folder holds the LoRA adapter only,
its adapter_config.json naming the base model by its Hub id when it has one, and the card says so. With
publish.push: true the folder is uploaded with huggingface_hub; otherwise nothing leaves the machine (a dry run).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vdr.card import (
    PICTURE,
    changed_params,
    git_commit,
    model_card,
    pipeline_hashes,
    set_adapter_base,
    set_truncate_dim,
)
from vdr.hub import hub_model_id, hub_token, push_folder
from vdr.params import load_params
from vdr.shards import atomic_path
from vdr.stage import parse_args, stage_process


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    embedder: Path = Path("models/embedder")
    metrics: Path = Path("metrics/evaluate.json")
    fetch_metrics: Path = Path("metrics/fetch.json")
    generate_metrics: Path = Path("metrics/generate.json")
    picture: Path = Path("reports") / PICTURE
    output: Path = Path("models/published")


def main(paths: Paths) -> None:
    # 1. Parameters; fail before doing anything if a push cannot happen
    params = load_params(paths.params)
    publish = params.publish
    if publish.push:
        hub_token()
    if not (paths.embedder / "modules.json").exists():
        raise FileNotFoundError(
            f"{paths.embedder} is not a saved sentence-transformers model; run `dvc repro train_embedder` first"
        )

    # 2. The card: results, data, parameters and provenance
    metrics = json.loads(paths.metrics.read_text())
    full_size = max(int(dim) for dim in metrics["finetuned"]["dims"])  # evaluate scores the model's full size too
    if publish.truncate_dim is not None and publish.truncate_dim > full_size:
        raise ValueError(
            f"publish.truncate_dim: {publish.truncate_dim} exceeds the model's embedding size {full_size}; "
            "lower it (or null: the full size)"
        )
    fetch_metrics = json.loads(paths.fetch_metrics.read_text()) if paths.fetch_metrics.exists() else {}
    generate_metrics = json.loads(paths.generate_metrics.read_text()) if paths.generate_metrics.exists() else {}
    commit = git_commit()
    experiment = os.environ.get("DVC_EXP_NAME", "workspace")  # set by `dvc exp run`
    overrides = changed_params(str(paths.params), commit)
    picture = paths.picture.exists()
    card = model_card(
        params,
        metrics,
        fetch_metrics,
        commit,
        experiment,
        overrides,
        pipeline_hashes(Path("dvc.lock")),
        picture,
        generate_metrics,
    )

    # 3. The model folder plus its card, written atomically
    with atomic_path(paths.output) as folder:
        shutil.copytree(paths.embedder, folder)
        set_truncate_dim(folder, publish.truncate_dim)
        set_adapter_base(folder, hub_model_id(params.models.embedder))
        (folder / "README.md").write_text(card)
        if picture:
            shutil.copyfile(paths.picture, folder / PICTURE)

    # 4. Push when asked: one commit, unchanged files are not sent again
    if not publish.push:
        print(f"dry run: {paths.output} is ready; set publish.push: true and publish.repo_id to upload it")
        return
    url = push_folder(
        paths.output,
        publish.repo_id,
        publish.private,
        commit_message=f"Publish DVC experiment {experiment} at git {commit}",
        commit_description=(
            f"Model card and weights from the vdr pipeline (DVC experiment `{experiment}`, git commit `{commit}`)."
        ),
    )
    print(f"published {paths.output} to {publish.repo_id}: {url}")


if __name__ == "__main__":
    with stage_process("publish"):
        main(parse_args(Paths, __doc__))
