"""Crash and resume: a training stage killed mid-run resumes from its last checkpoint on the next
`dvc repro` and ends with the same model, bit for bit, and the same training curve as a run that was
never interrupted (on the CPU): the embedder, the reranker, and the late-interaction model (MiniLM as a
multi-vector model, on page texts), each fully finetuned, and the embedder and the late-interaction model
training LoRA adapters (whose checkpoints hold the adapters only)."""

import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.support.repo import TINY, commit_all, copy_repo, run, stage_environment, tiny_params

pytestmark = [pytest.mark.e2e, pytest.mark.minutes]  # dvc repro

# 6 embedder steps of 4 triplets, a checkpoint every 3; 4 reranker steps of 4 pairs, a checkpoint every 2;
# 4 multi-vector steps of 4 triplets (the cached loss, 2 inputs at a time), a checkpoint every 2
RESUMABLE = {
    **TINY,
    "train_embedder": {
        **TINY["train_embedder"],
        "max_train_samples": 24,
        "batch_size": 4,
        "mini_batch_size": 4,
        "save_steps": 3,
    },
    "train_reranker": {**TINY["train_reranker"], "max_train_queries": 8, "batch_size": 4, "save_steps": 2},
    "train_multivector": {
        "enabled": True,
        "max_train_samples": 16,
        "batch_size": 4,
        "mini_batch_size": 2,
        "projection_dim": 16,
        "query_length": 16,
        "document_length": 32,
        "save_steps": 2,
    },
}
# LoRA adapters on the embedder and the late-interaction model, not merged: the saved model is the adapter
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "merge": False}
RESUMABLE_LORA = {
    **RESUMABLE,
    "train_embedder": {**RESUMABLE["train_embedder"], "lora": LORA},
    "train_multivector": {**RESUMABLE["train_multivector"], "lora": LORA},
}
MODEL = {
    "train_embedder": "models/embedder",
    "train_reranker": "models/reranker",
    "train_multivector": "models/multivector",
}
FIRST_CHECKPOINT = {
    "train_embedder": "models/checkpoints/embedder/checkpoint-3",
    "train_reranker": "models/checkpoints/reranker/checkpoint-2",
    "train_multivector": "models/checkpoints/multivector/checkpoint-2",
}


def model_digest(folder):
    """sha256 over every file of a saved model (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def finished(repo, stage):
    """What a finished run leaves: the model's bytes and the per-step loss curve."""
    return model_digest(repo / MODEL[stage]), (repo / f"dvclive/{stage}/plots/metrics/loss.tsv").read_text()


def uninterrupted_runs(tiny_pipeline, folder, overrides, stages):
    """A tiny repo with checkpoints every 2 steps, and each training stage's uninterrupted result: a copy of the
    session's tiny pipeline run with `overrides`, whose data stages are TINY's, so only what trains reruns."""
    env = stage_environment()
    repo = copy_repo(tiny_pipeline[0], folder / "repo")
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(overrides), sort_keys=False))
    commit_all(repo, env, "resumable")
    run(["dvc", "repro", *stages], repo, env)
    assert not list((repo / "models/checkpoints").glob("*/checkpoint-*")), "a finished run keeps no checkpoint"
    return repo, env, {stage: finished(repo, stage) for stage in stages}


@pytest.fixture(scope="module")
def resumable_repo(tiny_pipeline, tmp_path_factory):
    return uninterrupted_runs(tiny_pipeline, tmp_path_factory.mktemp("resume"), RESUMABLE, MODEL)


@pytest.fixture(scope="module")
def resumable_lora_repo(tiny_pipeline, tmp_path_factory):
    stages = ["train_embedder", "train_multivector"]
    return uninterrupted_runs(tiny_pipeline, tmp_path_factory.mktemp("resume-lora"), RESUMABLE_LORA, stages)


def kill_after_first_checkpoint(repo, env, stage, sig):
    """`dvc repro -f` the stage in its own process group; once its first checkpoint is complete,
    kill the whole group."""
    marker = repo / FIRST_CHECKPOINT[stage] / "complete"
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: a full pipe would stall the stage
    process = subprocess.Popen(
        ["dvc", "repro", "-f", "-s", stage],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"no checkpoint before the stage ended or 5 minutes passed:\n{log.read()[-3000:]}")
        time.sleep(0.05)
    os.killpg(process.pid, sig)  # the whole group: dvc and the stage's python process
    process.wait(timeout=60)
    assert process.returncode != 0
    assert not (repo / MODEL[stage]).exists(), "killed before the model was written"


@pytest.mark.parametrize(
    "stage, sig",
    [
        ("train_embedder", signal.SIGKILL),
        ("train_reranker", signal.SIGTERM),
        ("train_multivector", signal.SIGKILL),
    ],
    ids=["embedder-SIGKILL", "reranker-SIGTERM", "multivector-SIGKILL"],
)
def test_killed_training_resumes_to_the_same_result(resumable_repo, stage, sig):
    repo, env, uninterrupted = resumable_repo
    kill_after_first_checkpoint(repo, env, stage, sig)
    output = run(["dvc", "repro", stage], repo, env)
    assert f"resuming from {Path(FIRST_CHECKPOINT[stage]).name}" in output
    model, curve = finished(repo, stage)
    assert (
        curve == uninterrupted[stage][1]
    )  # the curve continues where the checkpoint left it: no gap, no repeated step
    assert model == uninterrupted[stage][0]  # bitwise: optimizer, scheduler, RNG and data order all restored
    assert "up to date" in run(["dvc", "status", stage], repo, env)


@pytest.mark.parametrize(
    "stage, sig",
    [("train_embedder", signal.SIGKILL), ("train_multivector", signal.SIGTERM)],
    ids=["embedder-lora-SIGKILL", "multivector-lora-SIGTERM"],
)
def test_killed_lora_training_resumes_to_the_same_adapter(resumable_lora_repo, stage, sig):
    repo, env, uninterrupted = resumable_lora_repo
    kill_after_first_checkpoint(repo, env, stage, sig)
    checkpoint = repo / FIRST_CHECKPOINT[stage]
    assert (checkpoint / "adapter_model.safetensors").exists()  # the adapter, no copy of the base model's weights
    assert not (checkpoint / "model.safetensors").exists()
    output = run(["dvc", "repro", stage], repo, env)
    assert f"resuming from {checkpoint.name}" in output
    assert finished(repo, stage) == uninterrupted[stage]  # the same adapter bytes and loss curve
    assert list((repo / MODEL[stage]).rglob("adapter_config.json"))  # the saved model is the adapter
    assert "up to date" in run(["dvc", "status", stage], repo, env)
