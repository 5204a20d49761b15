"""Each figure in one place: the docs that list the stages follow dvc.yaml, and the README's results are
reports/results.md's, so neither drifts from what the pipeline runs and writes."""

import re

import yaml

from tests.support.repo import REPO

STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def table_rows(markdown: str, header: str) -> list[list[str]]:
    """The cells of each row of the markdown table whose header line starts with `header`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_pipeline_page_lists_every_stage_in_dvc_yaml_order():
    rows = table_rows((REPO / "docs" / "pipeline.md").read_text(), "| stage |")
    assert [row[0] for row in rows] == STAGES, "docs/pipeline.md's stage table must list dvc.yaml's stages in order"


def test_the_readme_lists_every_stage_in_dvc_yaml_order():
    rows = table_rows((REPO / "README.md").read_text(), "| stage |")
    listed = [name.strip() for row in rows for name in row[0].split(",")]
    assert listed == STAGES, "README.md's pipeline table must list dvc.yaml's stages in order"


def test_the_readme_results_are_the_committed_report():
    """The README shows reports/results.md's tables as the last `dvc repro` wrote them, row for row."""
    report = (REPO / "reports" / "results.md").read_text()
    readme = (REPO / "README.md").read_text()
    for header in ("| system |", "| dims |"):
        assert table_rows(readme, header) == table_rows(report, header), (
            f"README.md's table '{header}' differs from reports/results.md: copy it from there"
        )
    compared = table_rows(readme, "| comparison |")
    assert compared and all(row in table_rows(report, "| comparison |") for row in compared), (
        "README.md's comparisons must be rows of reports/results.md's: copy them from there"
    )
    held_out = re.search(r"Held-out set: (\d+) queries, (\d+) pages", report)
    assert held_out, "reports/results.md names its held-out set"
    assert f"{int(held_out[1]):,} queries x {int(held_out[2]):,} pages" in readme
