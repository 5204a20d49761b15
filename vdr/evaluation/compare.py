"""Compare two experiments row by row: the paired NDCG@10 difference of each system, with its uncertainty.

    python -m vdr.evaluation.compare EXP_A EXP_B            # two `dvc exp` names, or any two git revisions
    python -m vdr.evaluation.compare HEAD workspace         # the last commit against the workspace's last run

For each system row both runs hold (base, finetuned, finetuned+reranker, ...), the TREC run files are read from
each revision's data/runs through DVC (the cache holds them: nothing reruns), and each query's NDCG@10 is compared
over the held-out queries of A (data/pages/eval/qrels.tsv at A; both runs must be scored on the same set). Printed:
each row's NDCG@10 in A and B, the difference B - A, its standard error, the paired bootstrap 95% interval
(vdr/evaluation/significance.py) and whether that interval excludes zero: a difference it does not exclude is
within the held-out set's noise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from vdr.evaluation.significance import paired_difference, parse_trec_run, per_query_ndcg
from vdr.io.qrels import read_qrels

RUNS = "data/runs"
QRELS = "data/pages/eval/qrels.tsv"
WORKSPACE = "workspace"


def resolve_revision(name: str, root: str = ".") -> str | None:
    """A `dvc exp` name as the git ref that holds it; a git revision (or `workspace`) as it is."""
    if name == WORKSPACE:
        return None
    from dvc.repo import Repo
    from dvc.repo.experiments.utils import resolve_name

    with Repo(root) as repo:
        found = resolve_name(repo.scm, name).get(name)
        if found is not None:
            return str(found)
        try:
            return repo.scm.resolve_rev(name)
        except Exception as error:  # scmrepo raises its own RevError
            raise ValueError(f"'{name}' is neither a `dvc exp` name nor a git revision here ({error})") from None


def read_at(path: str, rev: str | None, root: str = ".") -> str:
    """A file of the pipeline as revision `rev` has it (None: the workspace), from git or the DVC cache."""
    if rev is None:
        return (Path(root) / path).read_text(encoding="utf-8")
    import dvc.api

    try:
        with dvc.api.open(path, repo=root, rev=rev, encoding="utf-8") as handle:
            return handle.read()
    except Exception as error:  # dvc raises its own "not in cache" / "path does not exist" errors
        raise ValueError(
            f"{path} at {rev[:12]}: {error}; was that experiment run here (`dvc exp show`) and its cache kept?"
        ) from None


def systems_at(rev: str | None, root: str = ".") -> set[str]:
    """The systems whose run files `rev`'s evaluate stage wrote: one per row of its results table."""
    if rev is None:
        return {p.stem for p in (Path(root) / RUNS).glob("*.trec")}
    from dvc.repo import Repo

    with Repo(root, rev=rev) as repo:
        return {Path(entry).stem for entry in repo.dvcfs.ls(RUNS, detail=False) if entry.endswith(".trec")}


def run_at(system: str, rev: str | None, root: str = ".") -> dict[str, dict[str, float]]:
    path = f"{RUNS}/{system}.trec"
    return parse_trec_run(read_at(path, rev, root), path)


def compare(name_a: str, name_b: str, root: str = ".") -> list[dict]:
    """One row per system both revisions ran: NDCG@10 in each, and the paired difference B - A."""
    rev_a, rev_b = resolve_revision(name_a, root), resolve_revision(name_b, root)
    qrels_text = read_at(QRELS, rev_a, root)
    qrels_b = read_at(QRELS, rev_b, root)
    if qrels_text != qrels_b:
        raise ValueError(
            f"{QRELS} differs between {name_a} and {name_b}: they were scored on different held-out sets, so no "
            "per-query comparison holds; compare experiments of the same data"
        )
    with tempfile.TemporaryDirectory() as folder:  # read_qrels checks the file as the stages do
        (Path(folder) / "qrels.tsv").write_text(qrels_text, encoding="utf-8")
        qrels = read_qrels(Path(folder) / "qrels.tsv")
    rows = []
    for system in sorted(systems_at(rev_a, root) & systems_at(rev_b, root)):
        a = per_query_ndcg(run_at(system, rev_a, root), qrels)
        b = per_query_ndcg(run_at(system, rev_b, root), qrels)
        result = paired_difference(a, b)
        low, high = result["interval_95"]
        rows.append(
            {
                "system": system,
                "a": sum(a.values()) / len(a),
                "b": sum(b.values()) / len(b),
                **result,
                "excludes_zero": low > 0 or high < 0,
            }
        )
    return rows


def table(rows: list[dict], name_a: str, name_b: str) -> str:
    header = f"| system | {name_a} | {name_b} | difference | standard error | 95% interval | beyond noise |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        low, high = row["interval_95"]
        lines.append(
            f"| {row['system']} | {row['a']:.4f} | {row['b']:.4f} | {row['mean']:+.4f} | {row['standard_error']:.4f} "
            f"| [{low:+.4f}, {high:+.4f}] | {'yes' if row['excludes_zero'] else 'no'} |"
        )
    queries = rows[0]["queries"] if rows else 0
    return "\n".join(lines) + f"\n\nNDCG@10 over {queries} held-out queries; difference: {name_b} - {name_a}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vdr.evaluation.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", help="the reference: a `dvc exp` name, a git revision, or `workspace`")
    parser.add_argument("b", help="the one compared with it")
    args = parser.parse_args(argv)
    try:
        rows = compare(args.a, args.b)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not rows:
        print(f"error: {args.a} and {args.b} share no system row in {RUNS}", file=sys.stderr)
        return 1
    print(table(rows, args.a, args.b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
