"""publish: the finetuned embedder and the finetuned reranker, each with a generated model card, and the multi-vector
model with its own when late interaction is on; pushed to the Hub only when asked.

    python stages/publish.py          (run by `dvc repro publish`)
    HF_TOKEN=... dvc exp run -S publish.push=true -S publish.repo_id=ORG/NAME -S publish.reranker_repo_id=ORG/NAME2

Writes models/published (the embedder plus README.md, its card from vdr/publish/card.py, and the NDCG@10-by-dimension
picture) and models/published_reranker (the reranker, a sentence-transformers CrossEncoder, plus its card). With
train_embedder.lora (merge: false) a folder holds the LoRA adapter only, its adapter_config.json naming the base model
by its Hub id when it has one, and the card says so. With late interaction on (train_multivector.enabled) it also
writes models/published_multivector: models/multivector plus its card (MaxSim, the results beside the dense rows, the
index's cost); with it off that folder holds only a README.md saying so. Each card describes its model as it loads
from the published folder (vdr/publish/details.py), and shows no value that names this machine's folders or servers
(vdr/publish/private.py).

With publish.push: true the folders are uploaded with huggingface_hub: the embedder to publish.repo_id, the reranker to
publish.reranker_repo_id (null: not pushed), the multi-vector model to publish.multivector_repo_id. A push from a
working tree whose code differs from its git commit stops unless publish.allow_dirty is true (the cards then say so).
Otherwise nothing leaves the machine (a dry run).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vdr.config.evaluation import Evaluate
from vdr.config.fetch import Fetch
from vdr.config.lengths import with_measured_lengths
from vdr.config.mining import Mine, MineReranker
from vdr.config.models import Models
from vdr.config.publish import Publish
from vdr.config.section import load_sections
from vdr.config.training import TrainEmbedder, TrainMultivector, TrainReranker
from vdr.io.files import atomic_path
from vdr.models.loading import load_embedder
from vdr.models.multivector import load_multivector
from vdr.models.reranker import load_reranker
from vdr.publish.card import PICTURE, model_card, multivector_card, reranker_card
from vdr.publish.details import model_details
from vdr.publish.folder import require_hub_base, set_adapter_base, set_max_seq_length, set_truncate_dim
from vdr.publish.hub import hub_model_id, hub_token, push_folder
from vdr.publish.provenance import (
    Provenance,
    changed_params,
    git_commit,
    pipeline_hashes,
    pipeline_outputs,
    uncommitted_changes,
)
from vdr.stage import parse_args, stage_process


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    embedder: Path = Path("models/embedder")
    reranker: Path = Path("models/reranker")
    multivector: Path = Path("models/multivector")
    metrics: Path = Path("reports/results.json")  # evaluate's rows, dimensions and comparisons
    multivector_metrics: Path = Path("metrics/multivector.json")
    fetch_metrics: Path = Path("metrics/fetch.json")
    generate_metrics: Path = Path("metrics/generate.json")
    picture: Path = Path("reports") / PICTURE
    output: Path = Path("models/published")
    reranker_output: Path = Path("models/published_reranker")
    multivector_output: Path = Path("models/published_multivector")
    lengths: Path = Path("data/pages/lengths.json")  # max_seq_length auto: the length it was trained and scored at


def is_saved_model(folder: Path) -> bool:
    return (folder / "modules.json").exists()


def require_saved_model(folder: Path, stage: str) -> None:
    if not is_saved_model(folder):
        raise FileNotFoundError(f"{folder} is not a saved sentence-transformers model; run `dvc repro {stage}` first")


def describe(load):
    """The details of the model `load()` returns (from its published folder, as a user loads it); then free it."""
    model = load()
    details = model_details(model)
    del model
    gc.collect()
    return details


def main(paths: Paths) -> None:
    # 1. Parameters; fail before doing anything if a push cannot happen
    params = load_sections(
        paths.params,
        models=Models,
        publish=Publish,
        fetch=Fetch,
        mine=Mine,
        mine_reranker=MineReranker,
        train_embedder=TrainEmbedder,
        train_reranker=TrainReranker,
        train_multivector=TrainMultivector | None,
        evaluate=Evaluate,
    )
    params = with_measured_lengths(params, paths.lengths)
    publish = params.publish
    late = params.late_interaction
    commit = git_commit()
    uncommitted = uncommitted_changes(pipeline_outputs(Path("dvc.yaml")))
    if publish.push:
        hub_token()
        require_hub_base(params.train_embedder, params.models.embedder, "train_embedder")
        if publish.reranker_repo_id is not None:
            require_hub_base(params.train_reranker, params.models.reranker, "train_reranker")
        require_hub_base(late, params.models.embedder, "train_multivector")
        if uncommitted and not publish.allow_dirty:
            listed = ", ".join(uncommitted[:5]) + (", ..." if len(uncommitted) > 5 else "")
            raise RuntimeError(
                f"publish.push is true but the working tree differs from git commit {commit} in {len(uncommitted)} "
                f"tracked file(s) ({listed}), so the commit the cards name would not reproduce the models; commit "
                "them, or set publish.allow_dirty: true to publish anyway (the cards then say so)"
            )
    require_saved_model(paths.embedder, "train_embedder")
    reranker = is_saved_model(paths.reranker)
    if not reranker and publish.push and publish.reranker_repo_id is not None:
        require_saved_model(paths.reranker, "train_reranker")
    if late is not None:
        require_saved_model(paths.multivector, "train_multivector")

    # 2. What every card shares: the results, the data and where the models came from
    metrics = json.loads(paths.metrics.read_text())
    full_size = max(int(dim) for dim in metrics["finetuned"]["dims"])  # evaluate scores the model's full size too
    if publish.truncate_dim is not None and publish.truncate_dim > full_size:
        raise ValueError(
            f"publish.truncate_dim: {publish.truncate_dim} exceeds the model's embedding size {full_size}; "
            "lower it (or null: the full size)"
        )
    provenance = Provenance(
        commit=commit,
        experiment=os.environ.get("DVC_EXP_NAME", "workspace"),  # set by `dvc exp run`
        overrides=changed_params(str(paths.params), commit),
        hashes=pipeline_hashes(Path("dvc.lock")),
        fetch_metrics=json.loads(paths.fetch_metrics.read_text()) if paths.fetch_metrics.exists() else {},
        generate_metrics=json.loads(paths.generate_metrics.read_text()) if paths.generate_metrics.exists() else {},
        uncommitted=uncommitted,
    )
    picture = paths.picture.exists()

    # 3. The model folders, each with its card, written atomically; a model that is not there leaves its folder empty
    with atomic_path(paths.output) as folder:
        shutil.copytree(paths.embedder, folder)
        set_truncate_dim(folder, publish.truncate_dim)
        set_max_seq_length(folder, params.evaluate.max_seq_length)  # it loads as it was evaluated
        set_adapter_base(folder, hub_model_id(params.models.embedder))
        details = describe(lambda: load_embedder(str(folder), params.models))
        (folder / "README.md").write_text(model_card(params, metrics, provenance, details, picture))
        if picture:
            shutil.copyfile(paths.picture, folder / PICTURE)
    with atomic_path(paths.reranker_output) as folder:
        if not reranker:
            folder.mkdir()
            print(f"no reranker in {paths.reranker} (train_reranker has not run): {paths.reranker_output} is empty")
        else:
            shutil.copytree(paths.reranker, folder)
            set_adapter_base(folder, hub_model_id(params.models.reranker))
            details = describe(lambda: load_reranker(str(folder), params.models))
            (folder / "README.md").write_text(reranker_card(params, metrics, provenance, details))
    with atomic_path(paths.multivector_output) as folder:
        if late is None:
            folder.mkdir()
            (folder / "README.md").write_text(  # a note, not a model card: no modules.json, nothing to push
                "No multi-vector model: late interaction is off in this run (train_multivector.enabled: false), so "
                "nothing is published from here. `dvc exp run -S train_multivector.enabled=true` trains one, and this "
                "stage then writes it here with its card.\n"
            )
            off = "late interaction is off (train_multivector.enabled: false)"
            print(f"{off}: no model in {paths.multivector_output}, only a note")
        else:
            late_metrics = json.loads(paths.multivector_metrics.read_text())
            shutil.copytree(paths.multivector, folder)
            set_adapter_base(folder, hub_model_id(params.models.embedder))
            details = describe(lambda: load_multivector(str(folder), params.models))
            card = multivector_card(params, metrics, late_metrics, provenance, details)
            (folder / "README.md").write_text(card)

    # 4. Push when asked: one commit per repo, unchanged files are not sent again
    published = [(paths.output, publish.repo_id, "publish.repo_id")]
    if reranker:
        published.append((paths.reranker_output, publish.reranker_repo_id, "publish.reranker_repo_id"))
    if late is not None:
        published.append((paths.multivector_output, publish.multivector_repo_id, "publish.multivector_repo_id"))
    if not publish.push:
        for folder, _, key in published:
            print(f"dry run: {folder} is ready; set publish.push: true and {key} to upload it")
        return
    for folder, repo_id, key in published:
        if repo_id is None:
            print(f"not pushed: {folder} is ready; set {key} to upload it too")
            continue
        url = push_folder(
            folder,
            repo_id,
            publish.private,
            commit_message=f"Publish DVC experiment {provenance.experiment} at git {commit}",
            commit_description=(
                f"Model card and weights from the vdr pipeline (DVC experiment `{provenance.experiment}`, git commit "
                f"`{commit}`)."
            ),
        )
        print(f"published {folder} to {repo_id}: {url}")


if __name__ == "__main__":
    with stage_process("publish"):
        main(parse_args(Paths, __doc__))
