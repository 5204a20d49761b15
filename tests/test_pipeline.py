"""End to end: the real stages through DVC on a tiny slice; what DVC reruns after a change; determinism."""

import hashlib
import json
import subprocess

import pytest
import yaml

from tests.support.repo import REPO, STAGES, copy_repo, make_tiny_repo, ran_stages, run
from vdr.config.params import load_params
from vdr.data.evalset import EvalSet
from vdr.evaluation.driver import Evaluation
from vdr.models.loading import load_embedder
from vdr.retrieval.dense import DenseRetriever

pytestmark = [pytest.mark.e2e, pytest.mark.minutes]  # dvc repro, the stage scripts as subprocesses


def snapshot(repo):
    """The data and model hashes of dvc.lock and the metrics, without timings
    (the published cards name their git commit)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    hashes = {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"].startswith(("data/", "models/")) and not out["path"].startswith("models/published")
    }
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    for system in ("finetuned+reranker", "finetuned+reranker_only"):
        metrics[system].pop("ms_per_query")
    return hashes, metrics


@pytest.fixture(scope="module")
def first_run(tiny_pipeline, tmp_path_factory):
    """The session's tiny pipeline run, copied: the tests here change its params."""
    pipeline, output = tiny_pipeline
    repo = copy_repo(pipeline, tmp_path_factory.mktemp("tiny") / "repo")
    return repo, output, snapshot(repo)


def test_pipeline_end_to_end(first_run, stage_env):
    repo, output, _ = first_run
    assert ran_stages(output) == set(STAGES)
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    for system in ("base", "base_as_is", "finetuned", "finetuned+reranker", "finetuned+reranker_only"):
        assert 0.0 <= metrics[system]["ndcg@10"] <= 1.0
        assert set(metrics[system]) >= {"ndcg@10", "mrr@10", "recall@10"} and "dims" not in metrics[system]
    # the fusion weight chosen on the validation split held out of training, never on the held-out set
    assert metrics["system"]["chosen_on"] == "validation" and metrics["system"]["validation_queries"] > 0
    assert metrics["finetuned+reranker"]["fusion_weight"] == metrics["system"]["reranker_weight"] > 0
    assert "finetuned vs base_as_is" in metrics["comparisons"]
    assert "System chosen on the validation split" in (repo / "reports/results.md").read_text()
    assert set(json.loads((repo / "reports/results.json").read_text())["finetuned"]["dims"]) == {"384", "64"}
    assert (repo / "models/published/modules.json").exists()
    card = (repo / "models/published/README.md").read_text()
    assert "| finetuned embedder |" in card and "dvc.lock sha256" in card
    assert "| dims | base | finetuned |" in (repo / "reports/results.md").read_text()
    runs = (repo / "data/runs/finetuned+reranker.trec").read_text().splitlines()
    assert len({line.split()[0] for line in runs}) == 10  # reranking never drops a query
    assert (
        "held_out_ndcg@10" in json.loads((repo / "dvclive/train_reranker/metrics.json").read_text())["eval"]
    )  # the in-training evaluator
    assert "finetuned+reranker" in run(["dvc", "metrics", "show", "--json"], repo, stage_env)


def test_fresh_runs_are_identical(first_run, tmp_path, stage_env):
    _, _, first = first_run
    second_repo = make_tiny_repo(tmp_path, stage_env)
    run(["dvc", "repro"], second_repo, stage_env)
    assert snapshot(second_repo) == first


def test_base_metrics_from_embed_base_equal_encoding_the_base_model_in_evaluate(first_run):
    """The split changes no number: the base metrics scored from embed_base's embeddings are the ones
    evaluate computed when it encoded the base model itself (one encoding pass, as before the split)."""
    repo, _, _ = first_run
    params = load_params(repo / "params.yaml")
    evalset = EvalSet.load(repo / "data/pages/eval")
    model = load_embedder(params.models.embedder, params.models, max_seq_length=params.evaluate.max_seq_length)
    retriever = DenseRetriever(model, params.evaluate.batch_size)
    direct = Evaluation(evalset, evalset.documents("text")).dense("base", retriever, params.evaluate.dims)
    assert json.loads((repo / "reports/results.json").read_text())["base"] == direct


def test_only_what_changed_reruns(first_run, stage_env):
    repo, _, _ = first_run
    # nothing changed: nothing reruns but the check, which looks at what DVC cannot see (its output is unchanged)
    status = run(["dvc", "status"], repo, stage_env)
    assert [line.strip() for line in status.splitlines() if line.strip()] == ["check:", "always changed"], status
    assert ran_stages(run(["dvc", "repro"], repo, stage_env)) == {"check"}
    # another coverage for max_seq_length auto that gives the same limit: generate measures again, but
    # data/pages/lengths.json holds only the limit, so data/pages is as it was and nothing after generate reruns
    measured = json.loads((repo / "metrics/generate.json").read_text())["token_lengths"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"]["length_coverage"] = 0.95
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran_stages(run(["dvc", "repro"], repo, stage_env)) == {"check", "generate"}
    assert json.loads((repo / "metrics/generate.json").read_text())["token_lengths"] == measured
    # a train_embedder param reruns the embedder and what depends on it (the reranker trains on its negatives),
    # never the data stages nor the base model's encoding of the held-out set (embed_base); base metrics stay the same
    before = json.loads((repo / "metrics/evaluate.json").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_embedder"]["learning_rate"] = 2e-4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran_stages(run(["dvc", "repro"], repo, stage_env)) == {
        "check",  # every params change is checked first; its output stays the same, so it reruns nothing else
        "train_embedder",
        "mine_reranker",
        "train_reranker",
        "evaluate_multivector",  # reranks the multi-vector top-k with the new reranker; off: empty outputs in a second
        "evaluate",
        "gallery",  # the finetuned embedder's run changed
        "publish",
    }
    after = json.loads((repo / "metrics/evaluate.json").read_text())
    assert after["base"] == before["base"]


def test_missing_input_is_named(tmp_path, stage_env):
    result = subprocess.run(
        [
            "python",
            str(REPO / "stages/render.py"),
            "--params",
            str(REPO / "params.yaml"),
            "--raw",
            str(tmp_path / "raw"),
        ],
        cwd=tmp_path,
        env=stage_env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "raw/layout.json: missing" in result.stderr  # what fetch declares it wrote
    assert "run `dvc repro fetch`" in result.stderr


def output_digests(repo) -> dict[str, str]:
    """sha256 of every file the pipeline wrote (data, models, metrics, reports, curves), but check's own marker."""
    files = [p for folder in ("data", "models", "metrics", "reports", "dvclive") for p in (repo / folder).rglob("*")]
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file() and p.name != "check.json"
    }


BROKEN_PARAMS = {
    "a value out of range": (lambda p: p["train_embedder"].update(learning_rate=-1.0), "train_embedder.learning_rate"),
    "a misspelled section": (lambda p: p.update(trian_embedder={"epochs": 2}), "trian_embedder"),
    "a push without a token": (lambda p: p["publish"].update(push=True, repo_id="org/name"), "HF_TOKEN"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PARAMS))
def test_a_bad_param_stops_the_run_before_any_output_is_removed(first_run, stage_env, case):
    """The fault table's "what is kept": after a good run, a broken params.yaml stops `dvc repro` in the check
    stage, naming the key, and every model, metric, report, run file and curve is still there, unchanged."""
    repo, _, _ = first_run
    good = (repo / "params.yaml").read_text()
    before = output_digests(repo)
    assert any(path.startswith("models/published/") for path in before) and "metrics/evaluate.json" in before
    mutate, named = BROKEN_PARAMS[case]
    params = yaml.safe_load(good)
    mutate(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = subprocess.run(["dvc", "repro"], cwd=repo, env=stage_env, capture_output=True, text=True)
        assert result.returncode != 0, "a broken params.yaml must fail the run"
        assert named in result.stdout + result.stderr
        assert ran_stages(result.stdout) == {"check"}
        assert output_digests(repo) == before
    finally:
        (repo / "params.yaml").write_text(good)
    assert ran_stages(run(["dvc", "repro"], repo, stage_env)) == {"check"}  # fixed: only the check runs again
