"""A two-point sweep of the tiny pipeline through DVC's experiment queue, compared in `dvc exp show --json`: the
reranker's fusion weight, as docs/experiments.md sweeps it.

Queued experiments run in a temporary copy of the git repository, so the tiny repo commits everything they need; the
DVC cache (and its run-cache) is shared, so both experiments take every stage before `evaluate` from the tiny pipeline
run the repo is copied from, and evaluate from there.
"""

import json
import subprocess
import time

import pytest

from tests.support.repo import commit_all, copy_repo, run

pytestmark = [pytest.mark.e2e, pytest.mark.minutes]  # dvc exp run --queue

FUSION_WEIGHTS = (0.3, 0.7)
TIMEOUT_S = 360


def experiments(shown: list) -> dict[str, dict]:
    """{experiment name: its data (params, metrics)} from `dvc exp show --json` (DVC 3 layout)."""
    found = {}
    for entry in shown:
        for experiment in entry.get("experiments") or []:
            for rev in experiment.get("revs", []):
                if rev.get("name") and rev.get("data"):
                    found[rev["name"]] = rev["data"]
    return found


def wait_for_queue(repo, env) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo, env)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(5)
    subprocess.run(
        ["dvc", "queue", "stop", "--kill"], cwd=repo, env=env, capture_output=True
    )  # never leave a worker behind
    pytest.fail(f"the experiment queue did not finish within {TIMEOUT_S} s:\n{status}")


def test_queued_sweep_shows_both_experiments(tiny_pipeline, tmp_path, stage_env):
    tiny_repo = copy_repo(tiny_pipeline[0], tmp_path / "repo")
    commit_all(tiny_repo, stage_env, "tiny pipeline run")  # its dvc.lock: what the experiments start from

    # 1. Queue a grid over the reranker's fusion weight, run the queue one experiment at a time
    grid = ",".join(str(weight) for weight in FUSION_WEIGHTS)
    queued = run(["dvc", "exp", "run", "--queue", "-S", f"evaluate.fusion_weight={grid}"], tiny_repo, stage_env)
    assert queued.count("Queued experiment") == 2, queued
    run(["dvc", "queue", "start", "-j", "1"], tiny_repo, stage_env)
    status = wait_for_queue(tiny_repo, stage_env)
    failed = [line.split()[0] for line in status.splitlines() if "Failed" in line]
    logs = [
        subprocess.run(
            ["dvc", "queue", "logs", task], cwd=tiny_repo, env=stage_env, capture_output=True, text=True
        ).stdout[-2000:]
        for task in failed
    ]
    assert not failed, status + "\n".join(logs)

    # 2. Both experiments, with their own params and metrics, in `dvc exp show --json`
    shown = experiments(json.loads(run(["dvc", "exp", "show", "--json"], tiny_repo, stage_env)))
    assert len(shown) == 2, shown.keys()
    weights, finetuned = set(), set()
    for data in shown.values():
        params = data["params"]["params.yaml"]["data"]
        weights.add(float(params["evaluate"]["fusion_weight"]))
        metrics = data["metrics"]["metrics/evaluate.json"]["data"]
        assert metrics["finetuned+reranker"]["fusion_weight"] == float(params["evaluate"]["fusion_weight"])
        assert 0.0 <= metrics["finetuned+reranker"]["ndcg@10"] <= 1.0
        finetuned.add(metrics["finetuned"]["ndcg@10"])
    assert weights == set(FUSION_WEIGHTS)
    assert len(finetuned) == 1 and 0.0 <= finetuned.pop() <= 1.0  # one embedder: only the fusion changed

    # 3. The comparison the README shows: sorted by NDCG@10, only the columns that differ
    table = run(
        [
            "dvc",
            "exp",
            "show",
            "--csv",
            "--only-changed",
            "--sort-by",
            "metrics/evaluate.json:finetuned+reranker.ndcg@10",
            "--sort-order",
            "desc",
        ],
        tiny_repo,
        stage_env,
    )
    assert "evaluate.fusion_weight" in table and "fetch.seed" not in table
