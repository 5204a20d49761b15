"""vdr/evaluation/significance.py: paired per-query NDCG@10 differences between two TREC runs."""

import re
import subprocess
import sys

import pytest

from vdr.evaluation.metrics import ir_metrics, write_trec_run
from vdr.evaluation.significance import (
    entry,
    main,
    paired_difference,
    per_query_ndcg,
    queries_needed,
    read_trec_run,
)
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
    with pytest.raises(ValueError, match="bad.trec, line 1: a TREC run line has 6 columns"):
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


# --- bad input: one sentence naming the file (and line), exit status 1, no traceback -------------------------------


def written(folder, a=None, b=None, qrels=None):
    """a.trec, b.trec and qrels.tsv in `folder` (runs() and QRELS unless given as text or bytes); their paths."""
    run_a, run_b = runs()
    files = {}
    for name, given, default in (("a.trec", a, run_a), ("b.trec", b, run_b)):
        files[name] = folder / name
        if given is None:
            write_trec_run(files[name], default, name[0])
        else:
            files[name].write_bytes(given if isinstance(given, bytes) else given.encode())
    files["qrels"] = folder / "qrels.tsv"
    if qrels is None:
        write_qrels(files["qrels"], QRELS)
    else:
        files["qrels"].write_bytes(qrels if isinstance(qrels, bytes) else qrels.encode())
    return [str(files["a.trec"]), str(files["b.trec"]), "--qrels", str(files["qrels"])]


def refused(argv) -> str:
    """The one sentence entry() ends with: SystemExit carrying the message, as the command prints it."""
    with pytest.raises(SystemExit) as stopped:
        entry(argv)
    message = str(stopped.value)
    assert message.startswith("significance: ") and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    "files, expected",
    [
        (dict(b="q0 Q0 d0 1 abc b\n"), r"b.trec, line 1: score 'abc' is not a number"),
        (dict(b="q0 Q0 d0 1 nan b\n"), r"b.trec, line 1: score 'nan' is not a finite number"),
        (dict(b="q0 Q0 d0 1 1.0 b\nq0 Q0 x 2 inf b\n"), r"b.trec, line 2: score 'inf' is not a finite number"),
        (
            dict(b="q0 Q0 d0 1 2.0 b\nq0 Q0 d0 2 1.0 b\n"),
            r"b.trec, line 2: query 'q0', doc 'd0' is already ranked on line 1; keep one line per pair",
        ),
        (dict(b="q0 Q0 d0 1 2.0\n"), r"b.trec, line 1: a TREC run line has 6 columns .* found 5: 'q0 Q0 d0 1 2.0'"),
        (dict(b="query-id\tcorpus-id\tscore\n"), r"b.trec, line 1: .* found 3 \(this looks like qrels, not a run\)"),
        (dict(b=b"q0 Q0 d\xe9 1 2.0 b\n"), r"b.trec: not UTF-8 text \(byte b'\\xe9' at byte offset 7, line 1\)"),
        (dict(qrels="q0 Q0 d0 1 2.0 a\n"), r"qrels.tsv: the header must be .* this looks like a TREC run file"),
        (dict(qrels=b"query-id\tcorpus-id\tscore\nq\xe9\td0\t1\n"), r"qrels.tsv: not UTF-8 text .* line 2"),
        (dict(b=""), r"b.trec holds no ranking \(an empty run file\)"),
        (dict(qrels="query-id\tcorpus-id\tscore\nq0\td0\t0\n"), r"qrels.tsv judges no page relevant"),
        (dict(qrels="query-id\tcorpus-id\tscore\n"), r"qrels.tsv judges no page relevant"),
        (
            dict(b="x1 Q0 d0 1 2.0 b\n"),
            r"b.trec ranks none of the 8 queries that .*qrels.tsv judges \(it ranks 'x1'\)",
        ),
        (
            dict(a="".join(f"q{i} Q0 d{i} 1 2.0 a\n" for i in range(3))),
            r"a.trec and .*b.trec rank different queries of .*qrels.tsv: 0 only in .*a.trec, 5 only in .*b.trec "
            r"\('q3', 'q4', 'q5', \.\.\.\); a paired comparison needs two runs over the same queries",
        ),
    ],
    ids=[
        "score-not-a-number",
        "score-nan",
        "score-inf",
        "duplicate-pair",
        "five-columns",
        "qrels-given-as-run",
        "run-not-utf8",
        "run-given-as-qrels",
        "qrels-not-utf8",
        "empty-run",
        "no-relevant-page",
        "empty-qrels",
        "run-of-another-set",
        "different-query-sets",
    ],
)
def test_bad_input_is_one_sentence_naming_the_file(tmp_path, files, expected):
    """Before: a raw traceback (ValueError, UnicodeDecodeError), or a number with no warning ("+nan over 0 queries",
    "-0.6667 over 3 queries" for runs over different queries)."""
    assert re.search(expected, refused(written(tmp_path, **files)))


def test_a_missing_file_and_a_target_out_of_range_are_refused(tmp_path, capsys):
    argv = written(tmp_path)
    assert refused([argv[0], str(tmp_path / "nothing.trec"), *argv[2:]]).startswith(
        f"significance: {tmp_path / 'nothing.trec'} does not exist"
    )
    for target in ("0", "-1", "2", "abc"):  # before: 0 a ZeroDivisionError, -1 a meaningless number of queries
        with pytest.raises(SystemExit) as stopped:
            main([*argv, "--target", target])
        assert stopped.value.code == 2
        assert "argument --target: must be" in capsys.readouterr().err


def test_queries_neither_run_ranks_count_zero_with_a_warning(tmp_path, capsys):
    a, b = runs()
    del a["q7"], b["q7"]
    unjudged = "".join(f"x{i} Q0 d0 1 1.0 a\n" for i in range(2))
    path_a, path_b = tmp_path / "a.trec", tmp_path / "b.trec"
    write_trec_run(path_a, a, "a")
    write_trec_run(path_b, b, "b")
    path_a.write_text(path_a.read_text() + unjudged)
    write_qrels(tmp_path / "qrels.tsv", QRELS)
    entry([str(path_a), str(path_b), "--qrels", str(tmp_path / "qrels.tsv")])
    captured = capsys.readouterr()
    qrels = tmp_path / "qrels.tsv"
    assert f"warning: {path_a} ranks 2 queries that {qrels} judges no page relevant for" in captured.err
    assert f"warning: neither run ranks 1 of the 8 queries that {qrels} judges ('q7'); they count 0" in captured.err
    assert "over 8 queries" in captured.out


def test_the_command_ends_with_one_sentence_and_exit_status_1(tmp_path):
    argv = written(tmp_path, b="q0 Q0 d0 1 nan b\n")
    result = subprocess.run(
        [sys.executable, "-m", "vdr.evaluation.significance", *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"significance: {argv[1]}, line 1: score 'nan' is not a finite number")


def test_each_matryoshka_dimension_is_compared_with_the_full_size():
    from vdr.evaluation.significance import paired_comparisons

    a, b = runs()
    comparisons = paired_comparisons({"finetuned": b}, QRELS, {"finetuned": {384: b, 64: a, 128: b}})
    assert list(comparisons) == ["finetuned@128 vs finetuned@384", "finetuned@64 vs finetuned@384"]
    assert comparisons["finetuned@128 vs finetuned@384"]["difference"] == 0
    smaller = comparisons["finetuned@64 vs finetuned@384"]
    assert smaller["difference"] == pytest.approx(ir_metrics(a, QRELS)["ndcg@10"] - ir_metrics(b, QRELS)["ndcg@10"])
