"""publish: the finetuned embedder with a generated model card, and the multi-vector model with its own when late
interaction is on; pushed to the Hub only when asked.

    python stages/publish.py          (run by `dvc repro publish`)
    HF_TOKEN=... dvc exp run -S publish.push=true -S publish.repo_id=ORG/NAME publish

Writes models/published (the model folder plus README.md, the card from vdr/publish/card.py, and the
NDCG@10-by-dimension picture). With train_embedder.lora (merge: false) the folder holds the LoRA adapter only,
its adapter_config.json naming the base model by its Hub id when it has one, and the card says so. With late
interaction on (train_multivector.enabled) it also writes models/published_multivector: models/multivector plus
its card (vdr/publish/card.py multivector_card: MaxSim, the results beside the dense rows, the index's cost); with it
off that folder is empty. With publish.push: true the folders are uploaded with huggingface_hub, the multi-vector one
to publish.multivector_repo_id; otherwise nothing leaves the machine (a dry run).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vdr.config.fetch import Fetch
from vdr.config.mining import Mine
from vdr.config.models import Models
from vdr.config.publish import Publish
from vdr.config.section import load_sections
from vdr.config.training import TrainEmbedder, TrainMultivector, TrainReranker
from vdr.io.files import atomic_path
from vdr.publish.card import PICTURE, model_card, multivector_card
from vdr.publish.folder import set_adapter_base, set_truncate_dim
from vdr.publish.hub import hub_model_id, hub_token, push_folder
from vdr.publish.provenance import changed_params, git_commit, pipeline_hashes
from vdr.stage import parse_args, stage_process


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    embedder: Path = Path("models/embedder")
    multivector: Path = Path("models/multivector")
    metrics: Path = Path("metrics/evaluate.json")
    multivector_metrics: Path = Path("metrics/multivector.json")
    fetch_metrics: Path = Path("metrics/fetch.json")
    generate_metrics: Path = Path("metrics/generate.json")
    picture: Path = Path("reports") / PICTURE
    output: Path = Path("models/published")
    multivector_output: Path = Path("models/published_multivector")


def require_saved_model(folder: Path, stage: str) -> None:
    if not (folder / "modules.json").exists():
        raise FileNotFoundError(f"{folder} is not a saved sentence-transformers model; run `dvc repro {stage}` first")


def main(paths: Paths) -> None:
    # 1. Parameters; fail before doing anything if a push cannot happen
    params = load_sections(
        paths.params,
        models=Models,
        publish=Publish,
        fetch=Fetch,
        mine=Mine,
        train_embedder=TrainEmbedder,
        train_reranker=TrainReranker,
        train_multivector=TrainMultivector | None,
    )
    publish = params.publish
    late = params.late_interaction
    if publish.push:
        hub_token()
    require_saved_model(paths.embedder, "train_embedder")
    if late is not None:
        require_saved_model(paths.multivector, "train_multivector")

    # 2. The cards: results, data, parameters and provenance
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
    hashes = pipeline_hashes(Path("dvc.lock"))
    picture = paths.picture.exists()
    card = model_card(params, metrics, fetch_metrics, commit, experiment, overrides, hashes, picture, generate_metrics)
    late_card = None
    if late is not None:
        late_metrics = json.loads(paths.multivector_metrics.read_text())
        late_card = multivector_card(
            params, metrics, late_metrics, fetch_metrics, commit, experiment, overrides, hashes, generate_metrics
        )

    # 3. The model folders plus their cards, written atomically; the multi-vector one empty when it is off
    with atomic_path(paths.output) as folder:
        shutil.copytree(paths.embedder, folder)
        set_truncate_dim(folder, publish.truncate_dim)
        set_adapter_base(folder, hub_model_id(params.models.embedder))
        (folder / "README.md").write_text(card)
        if picture:
            shutil.copyfile(paths.picture, folder / PICTURE)
    with atomic_path(paths.multivector_output) as folder:
        if late_card is None:
            folder.mkdir()
        else:
            shutil.copytree(paths.multivector, folder)
            set_adapter_base(folder, hub_model_id(params.models.embedder))
            (folder / "README.md").write_text(late_card)
    if late is None:
        print(f"late interaction is off (train_multivector.enabled: false): {paths.multivector_output} is empty")

    # 4. Push when asked: one commit per repo, unchanged files are not sent again
    published = [(paths.output, publish.repo_id, "publish.repo_id")]
    if late is not None:
        published.append((paths.multivector_output, publish.multivector_repo_id, "publish.multivector_repo_id"))
    if not publish.push:
        for folder, _, key in published:
            print(f"dry run: {folder} is ready; set publish.push: true and {key} to upload it")
        return
    for folder, repo_id, _ in published:
        url = push_folder(
            folder,
            repo_id,
            publish.private,
            commit_message=f"Publish DVC experiment {experiment} at git {commit}",
            commit_description=(
                f"Model card and weights from the vdr pipeline (DVC experiment `{experiment}`, git commit `{commit}`)."
            ),
        )
        print(f"published {folder} to {repo_id}: {url}")


if __name__ == "__main__":
    with stage_process("publish"):
        main(parse_args(Paths, __doc__))
