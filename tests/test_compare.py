"""`python -m vdr.evaluation.compare A B`: each system row of two revisions, its paired NDCG@10 difference read from
the runs DVC keeps, with the standard error, the bootstrap interval and whether it is beyond the held-out noise."""

import subprocess
import sys

import pytest

from tests.support.repo import stage_environment
from vdr.evaluation import compare

pytestmark = pytest.mark.e2e  # starts DVC

QUERIES = [f"q{i}" for i in range(40)]
QRELS = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\tp{q}\t1\n" for q in QUERIES)


def trec(ranks: dict[str, int], tag: str) -> str:
    """Each query's relevant page at `ranks[q]` (1 = first) among 3 pages."""
    lines = []
    for q in QUERIES:
        pages = [f"x{q}a", f"x{q}b"]
        pages.insert(ranks[q] - 1, f"p{q}")
        lines += [f"{q} Q0 {page} {rank} {10 - rank} {tag}" for rank, page in enumerate(pages, start=1)]
    return "\n".join(lines) + "\n"


def commit(repo, env, message):
    subprocess.run([sys.executable, "-m", "dvc", "add", "data/runs", "data/pages"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, env=env, check=True)


@pytest.fixture
def two_revisions(tmp_path):
    """Revision 1: base and finetuned rank the page 2nd; revision 2: finetuned ranks it 1st for 30 of 40 queries."""
    env = stage_environment()
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    repo = tmp_path / "repo"
    (repo / "data" / "runs").mkdir(parents=True)
    (repo / "data" / "pages" / "eval").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, env=env, check=True)
    (repo / "data" / "pages" / "eval" / "qrels.tsv").write_text(QRELS)
    second = dict.fromkeys(QUERIES, 2)
    (repo / "data" / "runs" / "base.trec").write_text(trec(second, "base"))
    (repo / "data" / "runs" / "finetuned.trec").write_text(trec(second, "finetuned"))
    commit(repo, env, "one")
    better = {q: 1 if i < 30 else 3 for i, q in enumerate(QUERIES)}
    (repo / "data" / "runs" / "finetuned.trec").write_text(trec(better, "finetuned"))
    commit(repo, env, "two")
    return repo


def test_each_row_is_compared_with_its_uncertainty(two_revisions, monkeypatch):
    monkeypatch.chdir(two_revisions)
    rows = {row["system"]: row for row in compare.compare("HEAD~1", "HEAD")}
    assert set(rows) == {"base", "finetuned"}
    assert rows["base"]["mean"] == 0 and not rows["base"]["excludes_zero"]  # the same run: no difference
    finetuned = rows["finetuned"]
    assert finetuned["a"] == pytest.approx(0.6309, abs=1e-4)  # the page second: 1 / log2(3)
    assert finetuned["b"] == pytest.approx((30 * 1 + 10 * 0.5) / 40)
    assert finetuned["mean"] == pytest.approx(finetuned["b"] - finetuned["a"])
    assert finetuned["standard_error"] > 0 and finetuned["excludes_zero"]


def test_the_command_prints_a_table_and_names_what_it_cannot_read(two_revisions, monkeypatch, capsys):
    monkeypatch.chdir(two_revisions)
    assert compare.main(["HEAD~1", "HEAD"]) == 0
    out = capsys.readouterr().out
    assert "| finetuned | 0.6309 | 0.8750 | +0.2441 |" in out and "| yes |" in out
    assert "over 40 held-out queries" in out
    assert compare.main(["no-such-experiment", "HEAD"]) == 1
    assert "neither a `dvc exp` name nor a git revision" in capsys.readouterr().err


def test_runs_on_different_held_out_sets_are_refused(two_revisions, monkeypatch):
    monkeypatch.chdir(two_revisions)
    (two_revisions / "data" / "pages" / "eval" / "qrels.tsv").write_text(QRELS.replace("pq0\t1", "pq0\t2"))
    with pytest.raises(ValueError, match="scored on different held-out sets"):
        compare.compare("HEAD", "workspace")
