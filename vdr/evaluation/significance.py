"""Is a difference between two systems larger than the held-out set's noise? Paired per-query NDCG@10 of two runs.

    python -m vdr.evaluation.significance data/runs/finetuned.trec data/runs/finetuned+reranker.trec
    python -m vdr.evaluation.significance A.trec B.trec --qrels data/pages/eval/qrels.tsv --target 0.015

Each query's NDCG@10 (pytrec_eval, as every metric here; a query without a relevant page is left out, one missing
from a run counts 0) in run B minus run A. Prints the mean difference (B - A, the difference of the two rows of the
results table), its standard error, a paired bootstrap 95% interval (resampling queries, seeded), how many queries
changed, and how many queries the set would need for the standard error to be half of --target, the smallest gain
worth telling from noise at about two standard errors.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytrec_eval

from vdr.io.qrels import read_qrels


def read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    """A TREC run file (qid Q0 docid rank score tag) as {query id: {doc id: score}}; a malformed line is named."""
    return parse_trec_run(Path(path).read_text(encoding="utf-8"), path)


def parse_trec_run(text: str, path: str | Path) -> dict[str, dict[str, float]]:
    """read_trec_run of text already read (`path` names it in errors), e.g. a file at another git revision."""
    run: dict[str, dict[str, float]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise ValueError(f"{path}:{number}: a TREC run line has 6 columns (qid Q0 docid rank score tag): {line!r}")
        run.setdefault(fields[0], {})[fields[2]] = float(fields[4])
    return run


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
REFERENCES = {
    "finetuned": "base",
    "finetuned+reranker": "finetuned",
    "finetuned+reranker_only": "finetuned",
    "finetuned+base_reranker": "finetuned",
    "finetuned+base_reranker_only": "finetuned",
}


def paired_comparisons(runs: dict[str, dict], qrels: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Each row of `runs` that has its reference row (REFERENCES) against it: the paired NDCG@10 difference, its
    standard error, the bootstrap 95% interval and whether that interval excludes zero ("beyond_noise")."""
    per_query = {name: per_query_ndcg(run, qrels) for name, run in runs.items()}
    comparisons = {}
    for name, reference in REFERENCES.items():
        if name in per_query and reference in per_query:
            result = paired_difference(per_query[reference], per_query[name])
            low, high = result["interval_95"]
            comparisons[f"{name} vs {reference}"] = {
                "difference": result["mean"],
                "standard_error": result["standard_error"],
                "interval_95_low": low,  # two numbers, as `dvc metrics show` and `dvc exp show` take them
                "interval_95_high": high,
                "beyond_noise": low > 0 or high < 0,
            }
    return comparisons


def queries_needed(standard_error: float, queries: int, target: float) -> int:
    """Queries for a standard error of target / 2, if the per-query spread stays as measured (the standard error
    shrinks as 1/sqrt(n))."""
    return math.ceil(queries * (2 * standard_error / target) ** 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vdr.evaluation.significance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", type=Path, help="TREC run file of the reference system (e.g. the embedder)")
    parser.add_argument("run_b", type=Path, help="TREC run file of the system compared with it (e.g. reranked)")
    parser.add_argument("--qrels", type=Path, default=Path("data/pages/eval/qrels.tsv"))
    parser.add_argument("--target", type=float, default=0.015, help="the gain to tell from noise (NDCG@10)")
    args = parser.parse_args(argv)
    qrels = read_qrels(args.qrels)
    a = per_query_ndcg(read_trec_run(args.run_a), qrels)
    b = per_query_ndcg(read_trec_run(args.run_b), qrels)
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


if __name__ == "__main__":
    main()
