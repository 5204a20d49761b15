"""docs/reliability.md's tables are checked against the tests, so that they are not a second list kept by hand: every
test a row names exists (its file, its function, and its parametrized id as pytest collects it), every row of the
case table names one, and every test of tests/test_reliability_cases.py is named by a row."""

import ast
import re
import subprocess
import sys
from functools import cache

import pytest

from tests.support.repo import REPO

DOC = REPO / "docs/reliability.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+)(\[[^`]*\])?)?`")  # `tests/x.py`, `tests/x.py::test_y[id]`
CASES = "tests/test_reliability_cases.py"


def table_rows() -> list[str]:
    """Every row of every table (not the header or the separator)."""
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("|")]
    return [line for line in lines if not re.fullmatch(r"\|[-| ]+\|", line) and not line.startswith("| fault tried")]


def named_tests() -> list[tuple[str, str | None, str | None]]:
    """(file, function, parametrized id) of every test a row names, in the order named."""
    return [
        (file, function or None, ident or None) for row in table_rows() for file, function, ident in NAMED.findall(row)
    ]


@cache
def functions_in(file: str) -> set[str]:
    tree = ast.parse((REPO / file).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_a_row_names_exists():
    named = named_tests()
    assert len(named) > 250  # the tables are read, not skipped
    missing_files = sorted({file for file, _, _ in named if not (REPO / file).is_file()})
    assert not missing_files, f"docs/reliability.md names test files that do not exist: {missing_files}"
    missing = sorted(
        {f"{file}::{function}" for file, function, _ in named if function and function not in functions_in(file)}
    )
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"


def test_every_row_of_the_case_table_names_a_test():
    text = DOC.read_text()
    cases = text[text.index("## Every case tried") :].split("\n## ")[0]
    rows = [line for line in cases.splitlines() if line.startswith("| ") and not line.startswith(("| class", "|---"))]
    without = [row[:120] for row in rows if not NAMED.search(row.rsplit("|", 2)[-2])]
    assert not without, f"rows whose last column names no test: {without}"


def test_every_reliability_case_is_named_by_a_row():
    named = {function for file, function, _ in named_tests() if file == CASES}
    tests = {name for name in functions_in(CASES) if name.startswith("test_")}
    assert tests - named == set(), f"tests of {CASES} that docs/reliability.md does not table: {tests - named}"


def test_every_case_of_tests_reliability_cases_says_what_it_did_before():
    """Its rows say the class before and the outcome now ("was CRASH (...) → ..."), or that the case held."""
    rows = [row for row in table_rows() if f"`{CASES}::" in row]
    vague = [row[:120] for row in rows if not re.match(r"(was [A-Z]+|held|the same)", row.split(" | ")[2])]
    assert rows and not vague, f"rows that do not say what the case did before: {vague}"


@pytest.mark.e2e  # collects every test file the tables name, in a pytest subprocess
def test_every_parametrized_id_a_row_names_is_collected():
    files = sorted({file for file, _, ident in named_tests() if ident})
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    node_ids = set(collected.stdout.splitlines())
    assert any("::" in node for node in node_ids), collected.stdout[-2000:] + collected.stderr[-2000:]
    missing = sorted(
        f"{file}::{function}{ident}"
        for file, function, ident in named_tests()
        if ident and f"{file}::{function}{unescape(ident)}" not in node_ids
    )
    assert not missing, f"docs/reliability.md names parametrized tests that pytest does not collect: {missing}"


def unescape(ident: str) -> str:
    """A parametrized id as the table writes it inside backticks and a Markdown table (`\\|` for `|`)."""
    return ident.replace("\\|", "|")
