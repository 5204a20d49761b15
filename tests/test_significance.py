"""vdr/evaluation/significance.py: paired per-query NDCG@10 differences between two TREC runs."""

import pytest

from vdr.evaluation.metrics import ir_metrics, write_trec_run
from vdr.evaluation.significance import main, paired_difference, per_query_ndcg, queries_needed, read_trec_run
from vdr.io.qrels import write_qrels

QRELS = {f"q{i}": {f"d{i}": 1} for i in range(8)}


def runs():
    """A: the relevant page first for q0-q3, second for q4-q7. B: first for all but q0."""
    a = {f"q{i}": ({f"d{i}": 2.0, "x": 1.0} if i < 4 else {"x": 2.0, f"d{i}": 1.0}) for i in range(8)}
    b = {f"q{i}": ({f"d{i}": 2.0, "x": 1.0} if i > 0 else {"x": 2.0, f"d{i}": 1.0}) for i in range(8)}
    return a, b


def test_the_mean_difference_is_the_difference_of_the_table_rows():
    a, b = runs()
    result = paired_difference(per_query_ndcg(a, QRELS), per_query_ndcg(b, QRELS))
    assert result["mean"] == pytest.approx(ir_metrics(b, QRELS)["ndcg@10"] - ir_metrics(a, QRELS)["ndcg@10"])
    assert result["queries"] == 8 and result["queries_changed"] == 5  # q0 worse, q4-q7 better
    low, high = result["interval_95"]
    assert low < result["mean"] < high and result["standard_error"] > 0
    assert paired_difference(per_query_ndcg(a, QRELS), per_query_ndcg(a, QRELS))["interval_95"] == (0.0, 0.0)


def test_queries_needed_scales_as_the_square_of_the_standard_error():
    assert queries_needed(0.011, 250, 0.015) == 538  # 250 x (2 x 0.011 / 0.015)^2 = 537.8
    assert queries_needed(0.0075, 250, 0.015) == 250


def test_the_command_reads_run_files_and_names_a_bad_line(tmp_path, capsys):
    a, b = runs()
    write_trec_run(tmp_path / "a.trec", a, "a")
    write_trec_run(tmp_path / "b.trec", b, "b")
    write_qrels(tmp_path / "qrels.tsv", QRELS)
    assert read_trec_run(tmp_path / "a.trec") == a
    main([str(tmp_path / "a.trec"), str(tmp_path / "b.trec"), "--qrels", str(tmp_path / "qrels.tsv")])
    out = capsys.readouterr().out
    # 4 queries gain 1 - 1/log2(3) = 0.3691 and one loses as much: 3 x 0.3691 / 8
    assert "NDCG@10 b - a: +0.1384 over 8 queries (5 changed)" in out and "needs about" in out
    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 0.5\n")
    with pytest.raises(ValueError, match="bad.trec:1: a TREC run line has 6 columns"):
        read_trec_run(tmp_path / "bad.trec")


def test_each_row_is_compared_with_its_reference_and_the_report_says_whether_it_is_noise():
    from vdr.evaluation.report import results_table
    from vdr.evaluation.significance import paired_comparisons

    a, b = runs()
    comparisons = paired_comparisons({"base": a, "finetuned": b, "finetuned+reranker": b}, QRELS)
    assert list(comparisons) == ["finetuned vs base", "finetuned+reranker vs finetuned"]
    gain = comparisons["finetuned vs base"]
    assert gain["difference"] == pytest.approx(ir_metrics(b, QRELS)["ndcg@10"] - ir_metrics(a, QRELS)["ndcg@10"])
    assert gain["interval_95_low"] < gain["difference"] < gain["interval_95_high"]
    same = comparisons["finetuned+reranker vs finetuned"]
    assert same["difference"] == 0 and same["standard_error"] == 0 and not same["beyond_noise"]

    row = {"ndcg@10": 0.5, "mrr@10": 0.5, "recall@10": 0.5}
    metrics = {
        "base": row,
        "finetuned": row,
        "held_out_set": {"queries": 8},
        "comparisons": comparisons,
        "precision": {"encode_bf16": True, "native_bf16": False},
    }
    table = results_table(metrics)
    assert f"| finetuned vs base | {gain['difference']:+.4f} | {gain['standard_error']:.4f} |" in table
    assert "| finetuned+reranker vs finetuned | +0.0000 | 0.0000 | [+0.0000, +0.0000] | no |" in table
    assert "over the 8 held-out queries" in table
    assert "bf16 autocast (emulated on this machine, several times slower)" in table
    float32 = results_table({**metrics, "precision": {"encode_bf16": False, "native_bf16": True}})
    assert "Encoding and reranking in float32." in float32
