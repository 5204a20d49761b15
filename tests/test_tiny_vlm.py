"""The `blog` profile on a tiny random Qwen3-VL: images really reach the model, and the real stages run
through DVC (`dvc exp run -S profile=...`, Hydra composition) on a synthetic dataset in the Hub layout."""

import json
import shutil

import numpy as np
import pytest
import yaml

from tests.support.repo import REPO, STAGES, commit_all, copy_project, ran_stages, run
from tests.support.tiny_vlm import page_image, synthetic_dataset, tiny_blog_params
from vdr.config.models import Models
from vdr.config.profiles import compose
from vdr.models.loading import check_processor, load_embedder
from vdr.models.reranker import load_reranker

pytestmark = pytest.mark.tiny_vlm

BLOG_BOUNDS = {"size": {"shortest_edge": 784, "longest_edge": 360000}}
IMAGE_PAGES = Models(
    embedder="tiny", reranker="tiny", page_input="image", processor_kwargs=BLOG_BOUNDS
)  # as the blog profile reads pages


def test_images_reach_the_embedder_and_pages_embed_differently(tiny_vlms):
    embedder = load_embedder(str(tiny_vlms[0]), IMAGE_PAGES)
    assert "image" in embedder.modalities
    features = embedder[0].preprocess([page_image(1), page_image(2)])
    assert (
        features["pixel_values"].shape[0] > 0
    )  # a tokenizer-only fallback would give placeholder tokens and no pixels
    pages = embedder.encode_document([page_image(n) for n in range(4)])
    assert pages.shape == (4, 64)
    distances = np.abs(pages[:, None, :] - pages[None, :, :]).max(axis=-1)
    assert (distances[~np.eye(4, dtype=bool)] > 1e-4).all()
    query = embedder.encode_query(["what does report 1 say about patients?"])
    assert query.shape == (1, 64) and np.isfinite(query).all()


def test_reranker_scores_query_and_page_image_pairs(tiny_vlms):
    reranker = load_reranker(str(tiny_vlms[1]), IMAGE_PAGES)
    features = reranker[0].preprocess([page_image(3)])
    assert features["pixel_values"].shape[0] > 0
    scores = reranker.predict([("report 1", page_image(1)), ("report 1", page_image(2))])
    assert len(scores) == 2 and np.isfinite(scores).all() and scores[0] != scores[1]


def test_ignored_image_bounds_are_caught(tiny_vlms):
    embedder = load_embedder(str(tiny_vlms[0]), IMAGE_PAGES)
    check_processor(embedder, BLOG_BOUNDS)
    with pytest.raises(ValueError, match="ignored models.processor_kwargs.size"):
        check_processor(embedder, {"size": {"shortest_edge": 784, "longest_edge": 999}})


@pytest.fixture(scope="module")
def tiny_blog_repo(tmp_path_factory, tiny_vlms):
    repo = tmp_path_factory.mktemp("tiny_blog")
    copy_project(repo, folders=("stages", "vdr", "conf"))
    synthetic_dataset(repo / "vdr-dataset", train_rows=24, eval_rows=8)
    params = tiny_blog_params(compose("blog"), str(tiny_vlms[0]), str(tiny_vlms[1]), "vdr-dataset")
    params["profile_name"] = "tiny_blog"
    (repo / "conf" / "profile" / "tiny_blog.yaml").write_text(
        "# @package _global_\n"
        + yaml.safe_dump(
            {k: v for k, v in params.items() if k != "publish"} | {"publish": {"truncate_dim": 32}}, sort_keys=False
        )
    )
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    return repo


@pytest.mark.e2e  # dvc exp run
@pytest.mark.minutes
def test_blog_stages_through_dvc_on_a_tiny_qwen3_vl(tiny_blog_repo, stage_env):
    repo = tiny_blog_repo
    run(["git", "init", "-q"], repo, stage_env)
    run(["dvc", "init", "-q"], repo, stage_env)
    run(["dvc", "config", "hydra.enabled", "true"], repo, stage_env)
    commit_all(repo, stage_env, "tiny blog")

    # 1. The whole pipeline, composed by DVC from conf/ (local dataset, given negatives)
    output = run(["dvc", "exp", "run", "-S", "profile=tiny_blog"], repo, stage_env)
    assert ran_stages(output) == set(STAGES)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["profile_name"] == "tiny_blog" and params["fetch"]["source"] == "local"
    fetched = json.loads((repo / "metrics/fetch.json").read_text())
    assert (fetched["train_pairs"], fetched["eval_queries"], fetched["eval_pages"]) == (
        24,
        8,
        40,
    )  # 8 queries x (1 + 4 negatives)
    assert json.loads((repo / "metrics/mine.json").read_text())["source"] == "given"
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    for system in ("base", "finetuned", "finetuned+reranker", "finetuned+base_reranker"):
        assert 0.0 <= metrics[system]["ndcg@10"] <= 1.0
    assert set(json.loads((repo / "reports/results.json").read_text())["finetuned"]["dims"]) == {"64", "32"}
    assert (
        json.loads((repo / "metrics/mine_reranker.json").read_text())["embedder"] == "finetuned"
    )  # (query text, page image) negatives from the finetuned embedder
    assert "held_out_ndcg@10" in (repo / "dvclive/train_reranker/metrics.json").read_text()
    assert "vdr-eval-hard" in (repo / "dvclive/train_embedder/metrics.json").read_text()
    published = json.loads((repo / "models/published/config_sentence_transformers.json").read_text())
    assert published["truncate_dim"] == 32
    qrels = (repo / "data/pages/eval/qrels.tsv").read_text().splitlines()
    assert qrels[1:3] == ["0\t0\t1", "1\t1\t1"]

    # 2. Mined negatives instead of the given ones: the data stages before mine and embed_base do not rerun (the
    # experiment stops at mine), and what reads the triplets is out of date, so the next run would train on them
    output = run(["dvc", "exp", "run", "-S", "profile=tiny_blog", "-S", "mine.source=mined", "mine"], repo, stage_env)
    assert ran_stages(output) == {"check", "mine"}
    assert json.loads((repo / "metrics/mine.json").read_text())["source"] == "mined"
    stale = run(["dvc", "status", "--json"], repo, stage_env)
    # the stages that read data/mined, and publish, whose card states the mine section
    assert set(json.loads(stale)) == {"check", "train_embedder", "train_multivector", "publish"}, stale
