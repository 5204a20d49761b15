"""vdr.evaluation.plots and dvc_plots: the NDCG@10-by-dimension SVG, and every dvc.yaml plot drawn offline into a
page with no scripts."""

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from vdr.evaluation import dvc_plots, plots

SVG = "{http://www.w3.org/2000/svg}"
ROWS = [
    {"dim": 256, "base": 0.61, "finetuned": 0.70, "distilled": 0.66},
    {"dim": 64, "base": 0.52, "finetuned": 0.63, "distilled": 0.58},
    {"dim": 128, "base": 0.57, "finetuned": 0.68, "distilled": 0.62},
]
DVC_YAML = """\
plots:
  - Training loss:
      x: step
      y:
        logs/loss.tsv: loss
  - NDCG by dimension:
      template: linear
      x: dim
      y:
        metrics/by_dim.json: [base, finetuned]
"""


def svg_texts(svg: str) -> list[str]:
    """The words drawn in an SVG (it must parse as XML with an <svg> root)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return [element.text or "" for element in root.iter(f"{SVG}text")]


@pytest.fixture
def dvc_repo(tmp_path):
    """A minimal DVC repository whose dvc.yaml declares a TSV plot and a JSON plot; only the TSV exists."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "logs").mkdir()
    (repo / "logs" / "loss.tsv").write_text("step\tloss\n1\t0.9\n2\t0.5\n3\t0.3\n")
    return repo


def test_ndcg_svg_is_svg_naming_every_system():
    svg = plots.ndcg_by_dimension_svg(ROWS)
    texts = " ".join(svg_texts(svg))
    assert plots.TITLE in texts and "NDCG@10" in texts
    for system in ("base", "finetuned", "distilled"):
        assert system in texts
    for dim in ("64", "128", "256"):
        assert dim in svg_texts(svg)


def test_ndcg_svg_same_rows_same_bytes():
    first = plots.ndcg_by_dimension_svg(ROWS)
    plots.ndcg_by_dimension_svg(ROWS[:2])  # advances vega's clip-path counter
    assert plots.ndcg_by_dimension_svg([dict(row) for row in ROWS]) == first


def test_ndcg_svg_without_rows_says_so():
    with pytest.raises(plots.PlotError, match="no NDCG@10"):
        plots.ndcg_by_dimension_svg([])


def test_stable_ids_renumber_definitions_and_references_only():
    svg = '<g clip-path="url(#clip7)"/><use href="#g3"/><clipPath id="clip7"/><linearGradient id="g3"/><a href="#a"/>'
    expected = '<g clip-path="url(#p-id1)"/><use href="#p-id2"/><clipPath id="p-id1"/><linearGradient id="p-id2"/>'
    assert plots.stable_ids(svg, "p-") == expected + '<a href="#a"/>'


@pytest.mark.e2e  # dvc plots show
def test_render_dvc_plots_draws_every_plot_offline(dvc_repo, tmp_path, capsys):
    (dvc_repo / "metrics").mkdir()
    (dvc_repo / "metrics" / "by_dim.json").write_text(json.dumps(ROWS))
    out = tmp_path / "out"
    assert dvc_plots.main(["--out", str(out), "--repo", str(dvc_repo)]) == 0
    index = out / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    assert sorted(path.name for path in out.iterdir()) == ["index.html", "ndcg-by-dimension.svg", "training-loss.svg"]
    page = index.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", page) and "<link" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "<h2>Training loss</h2>" in page and "<h2>NDCG by dimension</h2>" in page and "No data yet" not in page
    for name in ("ndcg-by-dimension.svg", "training-loss.svg"):
        svg = (out / name).read_text()
        svg_texts(svg)
        assert svg in page  # inlined, with ids unique to each picture
    assert "base" in " ".join(svg_texts((out / "ndcg-by-dimension.svg").read_text()))


@pytest.mark.e2e  # dvc plots show
def test_render_dvc_plots_lists_plots_without_data(dvc_repo, tmp_path):
    written = dvc_plots.render_dvc_plots(tmp_path / "out", repo=dvc_repo)
    assert [path.name for path in written] == ["training-loss.svg", "index.html"]
    page = written[-1].read_text()
    no_data = page[page.index("No data yet") :]
    assert "NDCG by dimension" in no_data and "metrics/by_dim.json" in no_data and "dvc repro" in no_data
    assert "<h2>Training loss</h2>" in page


@pytest.mark.e2e  # dvc plots show
def test_failing_dvc_shows_its_stderr(dvc_repo, tmp_path):
    (dvc_repo / ".dvc" / "config").write_text("[core]\n    bogus_option = 1\n")
    with pytest.raises(plots.PlotError, match="(?s)dvc plots show --json` failed.*bogus_option"):
        dvc_plots.render_dvc_plots(tmp_path / "out", repo=dvc_repo)


@pytest.mark.e2e  # dvc plots show
def test_unreadable_dvc_yaml_is_an_error_not_an_empty_page(dvc_repo, tmp_path):
    (dvc_repo / "dvc.yaml").write_text("plots:\n  - Training loss:\n      y: [\n")
    with pytest.raises(plots.PlotError, match="(?s)could not read the plot definitions.*YAMLSyntaxError"):
        dvc_plots.render_dvc_plots(tmp_path / "out", repo=dvc_repo)
    assert not (tmp_path / "out").exists()


def test_missing_vl_convert_points_at_the_lock(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "vl_convert", None)  # makes `import vl_convert` raise ImportError
    with pytest.raises(plots.PlotError, match="pip install -r requirements.lock"):
        plots.ndcg_by_dimension_svg(ROWS)
    assert dvc_plots.main(["--out", str(tmp_path / "out"), "--repo", str(tmp_path)]) == 1
    assert "requirements.lock" in capsys.readouterr().err
