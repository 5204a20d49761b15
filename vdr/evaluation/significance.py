"""Is a difference between two systems larger than the held-out set's noise? Paired per-query NDCG@10 of two runs.

    python -m vdr.evaluation.significance data/runs/finetuned.trec data/runs/finetuned+reranker.trec
    python -m vdr.evaluation.significance A.trec B.trec --qrels data/pages/eval/qrels.tsv --target 0.015

Each query's NDCG@10 (pytrec_eval, as every metric here; a query without a relevant page is left out, one missing
from a run counts 0) in run B minus run A. Prints the mean difference (B - A, the difference of the two rows of the
results table), its standard error, a paired bootstrap 95% interval (resampling queries, seeded), how many queries
changed, and how many queries the set would need for the standard error to be half of --target, the smallest gain
worth telling from noise at about two standard errors.

Bad input stops it with one sentence naming the file (and the line), exit status 1, no traceback: a file missing or
not UTF-8, a run line without 6 columns, a score that is not a finite number, a (query, page) ranked twice, an empty
run, a run that ranks none of the judged queries, qrels that judge no page relevant, and two runs over different
judged queries (a paired comparison needs the same ones). A run that leaves out judged queries that the other run
leaves out too is compared with a warning: those queries count 0 in both.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pytrec_eval

from vdr.io.qrels import read_qrels, read_utf8
from vdr.stage import one_sentence_errors


def read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    """A TREC run file (qid Q0 docid rank score tag) as {query id: {doc id: score}}; a malformed line is named."""
    return parse_trec_run(read_utf8(path), path)


def parse_trec_run(text: str, path: str | Path) -> dict[str, dict[str, float]]:
    """read_trec_run of text already read (`path` names it in errors), e.g. a file at another git revision.

    A line without 6 columns, a score that is not a finite number, and a (query, doc) pair ranked twice are each a
    ValueError naming the file and the line."""
    run: dict[str, dict[str, float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        if len(fields) != 6:
            qrels = " (this looks like qrels, not a run)" if len(fields) in (3, 4) else ""
            raise ValueError(
                f"{where}: a TREC run line has 6 columns (qid Q0 docid rank score tag), found {len(fields)}{qrels}: "
                f"{line[:120]!r}"
            )
        query, doc, score = fields[0], fields[2], fields[4]
        try:
            value = float(score)
        except ValueError:
            raise ValueError(f"{where}: score {score!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{where}: score {score!r} is not a finite number; a run's scores must rank its pages")
        if (query, doc) in first_line:
            raise ValueError(
                f"{where}: query {query!r}, doc {doc!r} is already ranked on line {first_line[query, doc]}; keep one "
                "line per pair"
            )
        first_line[query, doc] = number
        run.setdefault(query, {})[doc] = value
    return run


def judged_queries(qrels: dict[str, dict[str, int]]) -> set[str]:
    """The queries scored: those with a relevant page (a score above 0)."""
    return {query for query, pages in qrels.items() if any(score > 0 for score in pages.values())}


def _queries(count: int) -> str:
    return f"{count} query" if count == 1 else f"{count} queries"


def _examples(ids: set[str]) -> str:
    shown = sorted(ids)[:3]
    return ", ".join(repr(i) for i in shown) + (", ..." if len(ids) > len(shown) else "")


def check_query_sets(runs: list[tuple[Path, dict]], qrels: dict[str, dict[str, int]], qrels_path: Path) -> list[str]:
    """Whether the two runs (path, run) can be compared query by query on `qrels`: a ValueError naming the file when
    they cannot (qrels judging no page relevant, an empty run, one that ranks none of the judged queries, two runs
    over different judged queries); else the warnings to print (queries left out, or counting 0 in both)."""
    queries = judged_queries(qrels)
    if not queries:
        raise ValueError(
            f"{qrels_path} judges no page relevant (no score above 0), so there is no query to score; is it the "
            "held-out set's qrels?"
        )
    warnings, ranked = [], []
    for path, run in runs:
        if not run:
            raise ValueError(f"{path} holds no ranking (an empty run file); rerun the system that writes it")
        ranked.append(set(run) & queries)
        if not ranked[-1]:
            raise ValueError(
                f"{path} ranks none of the {_queries(len(queries))} that {qrels_path} judges (it ranks "
                f"{_examples(set(run))}); is it a run over that held-out set?"
            )
        unjudged = set(run) - queries
        if unjudged:
            warnings.append(
                f"{path} ranks {_queries(len(unjudged))} that {qrels_path} judges no page relevant for "
                f"({_examples(unjudged)}); they are left out"
            )
    (path_a, _), (path_b, _) = runs
    only_a, only_b = ranked[0] - ranked[1], ranked[1] - ranked[0]
    if only_a or only_b:
        raise ValueError(
            f"{path_a} and {path_b} rank different queries of {qrels_path}: {len(only_a)} only in {path_a}"
            + (f" ({_examples(only_a)})" if only_a else "")
            + f", {len(only_b)} only in {path_b}"
            + (f" ({_examples(only_b)})" if only_b else "")
            + "; a paired comparison needs two runs over the same queries"
        )
    missing = queries - ranked[0]
    if missing:
        warnings.append(
            f"neither run ranks {len(missing)} of the {_queries(len(queries))} that {qrels_path} judges "
            f"({_examples(missing)}); they count 0 in both"
        )
    return warnings


def per_query_ndcg(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """NDCG@10 of every query that has a relevant page; 0 for one the run does not hold."""
    qrels = {q: pages for q, pages in qrels.items() if any(score > 0 for score in pages.values())}
    scored = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return {q: scored.get(q, {}).get("ndcg_cut_10", 0.0) for q in sorted(qrels)}


def paired_difference(a: dict[str, float], b: dict[str, float], resamples: int = 10000, seed: int = 0) -> dict:
    """B - A over the same queries: mean, standard error, paired bootstrap 95% interval, queries changed."""
    differences = np.array([b[q] - a[q] for q in a])
    n = len(differences)
    standard_error = float(differences.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = differences[draws].mean(axis=1)
    return {
        "queries": n,
        "mean": float(differences.mean()),
        "standard_error": standard_error,
        "interval_95": (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))),
        "queries_changed": int(np.count_nonzero(differences)),
    }


# each system row against its reference, as the evaluate stage reports them
REFERENCES = (  # (system, the row it is compared with)
    ("finetuned", "base"),
    ("finetuned", "base_as_is"),  # the base model at its own token limit, as a user would run it (embed_base)
    ("finetuned+reranker", "finetuned"),
    ("finetuned+reranker_only", "finetuned"),
    ("finetuned+base_reranker", "finetuned"),
    ("finetuned+base_reranker_only", "finetuned"),
)


def comparison(reference: dict[str, float], system: dict[str, float]) -> dict:
    """`system` against `reference` (per-query NDCG@10): the paired difference, its standard error, the bootstrap 95%
    interval and whether that interval excludes zero ("beyond_noise")."""
    result = paired_difference(reference, system)
    low, high = result["interval_95"]
    return {
        "difference": result["mean"],
        "standard_error": result["standard_error"],
        "interval_95_low": low,  # two numbers, as `dvc metrics show` and `dvc exp show` take them
        "interval_95_high": high,
        "beyond_noise": low > 0 or high < 0,
    }


def paired_comparisons(
    runs: dict[str, dict], qrels: dict[str, dict[str, int]], dimension_runs: dict[str, dict[int, dict]] | None = None
) -> dict[str, dict]:
    """Each row of `runs` against its reference row (REFERENCES), then each Matryoshka dimension of a model in
    `dimension_runs` ({model: {dim: run}}) against the model's full size ("finetuned@64 vs finetuned@384")."""
    per_query = {name: per_query_ndcg(run, qrels) for name, run in runs.items()}
    comparisons = {
        f"{name} vs {reference}": comparison(per_query[reference], per_query[name])
        for name, reference in REFERENCES
        if name in per_query and reference in per_query
    }
    for name, by_dim in (dimension_runs or {}).items():
        full = max(by_dim)
        at_full = per_query_ndcg(by_dim[full], qrels)
        for dim in sorted(by_dim, reverse=True)[1:]:
            comparisons[f"{name}@{dim} vs {name}@{full}"] = comparison(at_full, per_query_ndcg(by_dim[dim], qrels))
    return comparisons


def queries_needed(standard_error: float, queries: int, target: float) -> int:
    """Queries for a standard error of target / 2, if the per-query spread stays as measured (the standard error
    shrinks as 1/sqrt(n))."""
    return math.ceil(queries * (2 * standard_error / target) ** 2)


def ndcg_gain(text: str) -> float:
    """--target: a gain of NDCG@10, above 0 and at most 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be an NDCG@10 gain above 0 and at most 1 (e.g. 0.015), got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    """The command; bad input raises the ValueError or OSError that names it (entry() prints it as one sentence)."""
    parser = argparse.ArgumentParser(
        prog="python -m vdr.evaluation.significance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", type=Path, help="TREC run file of the reference system (e.g. the embedder)")
    parser.add_argument("run_b", type=Path, help="TREC run file of the system compared with it (e.g. reranked)")
    parser.add_argument("--qrels", type=Path, default=Path("data/pages/eval/qrels.tsv"))
    parser.add_argument("--target", type=ndcg_gain, default=0.015, help="the gain to tell from noise (NDCG@10)")
    args = parser.parse_args(argv)
    qrels = read_qrels(args.qrels)
    runs = [(path, read_trec_run(path)) for path in (args.run_a, args.run_b)]
    for warning in check_query_sets(runs, qrels, args.qrels):
        print(f"warning: {warning}", file=sys.stderr)
    a, b = (per_query_ndcg(run, qrels) for _, run in runs)
    result = paired_difference(a, b)
    low, high = result["interval_95"]
    print(
        f"NDCG@10 {args.run_b.stem} - {args.run_a.stem}: {result['mean']:+.4f} over {result['queries']} queries "
        f"({result['queries_changed']} changed), standard error {result['standard_error']:.4f}, "
        f"95% bootstrap interval [{low:+.4f}, {high:+.4f}]"
    )
    if result["standard_error"] > 0:
        needed = queries_needed(result["standard_error"], result["queries"], args.target)
        print(f"a gain of {args.target} at two standard errors needs about {needed} queries of this kind")


def entry(argv: list[str] | None = None) -> None:
    """main(), with bad input reported as one sentence and exit status 1 (VDR_TRACEBACK=1 for the traceback)."""
    with one_sentence_errors("significance"):
        main(argv)


if __name__ == "__main__":
    entry()
