"""vdr-eval on a dataset built here: image + text corpus, graded qrels; metrics equal pytrec_eval on its run file,
for a dense model and for a saved multi-vector (late-interaction) model."""

import numpy as np
import pytest
import pytrec_eval

from tests.support.evalsets import MODEL, beir_set, vdr_eval
from tests.support.images import png
from tests.support.repo import read_trec_run
from vdr.models.multivector import load_multivector

PAGES = {
    "p1": "Compute the arithmetic mean of an array along an axis.",
    "p2": "Read a comma-separated values file into a data frame.",
    "p3": "Sort the rows of a table by the values of a column.",
    "p4": "Draw a histogram of the values with a number of bins.",
    "p5": "Compute the median of the values, ignoring missing entries.",
}


@pytest.fixture
def dataset(tmp_path):
    ids = list(PAGES)
    corpus = {"id": ids, "text": [PAGES[i] for i in ids], "image": [png((i * 40, 0, 0)) for i in range(len(ids))]}
    queries = {"id": ["q1", "q2", "q3"], "text": ["average of numbers", "load a csv file", "plot a histogram"]}
    return beir_set(tmp_path / "set", corpus, queries, {"q1": {"p1": 2, "p5": 1}, "q2": {"p2": 1}, "q3": {"p4": 1}})


def test_vdr_eval_matches_pytrec_eval_on_its_run_file(dataset, tmp_path):
    metrics = vdr_eval(dataset, tmp_path, "--run-file", str(tmp_path / "run.trec"), "--dims", "384,64")["retrieve"]
    run = read_trec_run(tmp_path / "run.trec")
    assert {line.split()[5] for line in (tmp_path / "run.trec").read_text().splitlines()} == {"retrieve"}
    qrels = {"q1": {"p1": 2, "p5": 1}, "q2": {"p2": 1}, "q3": {"p4": 1}}
    direct = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.1,10"}).evaluate(run)
    mean = lambda key: sum(direct[q][key] for q in qrels) / len(qrels)  # noqa: E731
    assert metrics["ndcg@10"] == pytest.approx(mean("ndcg_cut_10"), abs=1e-9)
    assert metrics["recall@1"] == pytest.approx(mean("recall_1"), abs=1e-9)
    assert metrics["recall@10"] == pytest.approx(1.0)
    assert set(metrics["dims"]) == {"384", "64"}
    assert metrics["ndcg@10"] > 0.8  # the model finds these easy pages


def test_vdr_eval_with_a_reranker_keeps_every_query(dataset, tmp_path):
    reranker = ("--reranker", MODEL, "--top-k", "3", "--fusion-weight", "0.5")
    metrics = vdr_eval(dataset, tmp_path, "--run-file", str(tmp_path / "run.trec"), *reranker)
    # rows, then the counts, as in metrics/evaluate.json: the fused order, and the reranker's alone below weight 1
    assert list(metrics) == ["retrieve", "rerank", "rerank_only", "held_out_set"]
    assert set(metrics["rerank"]) >= {"ndcg@10", "mrr@10", "ms_per_query", "top_k", "fusion_weight", "reranker"}
    assert metrics["retrieve"]["model"] == MODEL and metrics["rerank"]["reranker"] == MODEL
    assert (metrics["rerank"]["fusion_weight"], metrics["rerank_only"]["fusion_weight"]) == (0.5, 1.0)
    assert set(read_trec_run(tmp_path / "run.trec")) == {"q1", "q2", "q3"}
    assert {line.split()[5] for line in (tmp_path / "run.trec").read_text().splitlines()} == {"rerank"}


def test_vdr_eval_rejects_bad_dims(dataset, tmp_path):
    with pytest.raises(ValueError, match="exceed the model's embedding size"):
        vdr_eval(dataset, tmp_path, "--dims", "4096")


def test_vdr_eval_scores_a_saved_multi_vector_model_by_maxsim(dataset, tmp_path):
    from types import SimpleNamespace

    from sentence_transformers.util.similarity import maxsim

    from vdr.config.training import Lora
    from vdr.training.lora import prepare, write_model

    model = load_multivector(MODEL, projection_dim=16, seed=7, query_length=16, document_length=8)
    model.save_pretrained(str(tmp_path / "multivector"))
    result = vdr_eval(dataset, tmp_path, "--run-file", str(tmp_path / "run.trec"), model=str(tmp_path / "multivector"))
    metrics = result["retrieve"]

    # every page against every query by MaxSim, from the model's own token vectors: the run file's scores
    queries, pages = ["average of numbers", "load a csv file", "plot a histogram"], list(PAGES.values())
    expected = maxsim(model.encode_query(queries), model.encode_document(pages)).numpy()
    run = read_trec_run(tmp_path / "run.trec")
    found = np.array([[run[q][p] for p in PAGES] for q in ("q1", "q2", "q3")])
    np.testing.assert_allclose(found, expected, atol=2e-3)  # the index holds float16 token vectors

    qrels = {"q1": {"p1": 2, "p5": 1}, "q2": {"p2": 1}, "q3": {"p4": 1}}
    direct = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert metrics["ndcg@10"] == pytest.approx(sum(direct[q]["ndcg_cut_10"] for q in qrels) / 3, abs=1e-9)
    assert metrics["token_dims"] == 16 and metrics["tokens_per_page"] == 8  # pages cut at the saved document_length
    assert metrics["index_bytes_per_page"] == pytest.approx(metrics["tokens_per_page"] * 16 * 2 + 6 * 8 / 5, abs=0.1)
    held_out = result["held_out_set"]
    assert (held_out["queries"], held_out["pages"]) == (3, 5) and "dims" not in metrics

    # saved as a LoRA adapter (lora.merge: false): rebuilt on its base with the saved projection and token limits
    adapter = prepare(model, SimpleNamespace(freeze_vision=False, lora=Lora(r=4, alpha=8)), MODEL, "train_multivector")
    write_model(model, tmp_path / "adapter", adapter)
    (tmp_path / "out").mkdir()
    again = vdr_eval(dataset, tmp_path / "out", model=str(tmp_path / "adapter"))["retrieve"]
    same = lambda row: {k: v for k, v in row.items() if k not in ("model", "ms_per_query")}  # noqa: E731
    assert same(again) == same(metrics)  # fresh LoRA layers change nothing

    with pytest.raises(SystemExit):  # no Matryoshka dimensions to truncate token vectors to
        vdr_eval(dataset, tmp_path, "--dims", "8", model=str(tmp_path / "multivector"))
