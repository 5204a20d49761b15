"""vdr.evaluation.plots and dvc_plots: the NDCG@10-by-dimension SVG, and every dvc.yaml plot drawn offline into a
page with no scripts; every picture drawn readably (axis titles with units, nothing cut off, noisy curves smoothed)."""

import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

from tests.support.repo import REPO
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


# --- every picture readable: rendered to PNG, axis titles that say what and in which unit, no text cut off ---------

PLACEHOLDER_TITLES = {"y", "x", "dim", "step", "loss", "dvc_inferred_y_value", "held_out_ndcg@10", "rev", "field"}
WIDE_FONT = {"normal": 0.6, "bold": 0.66}  # em per character of a wide sans-serif (DejaVu Sans) that a viewer may use
_TRANSFORM = re.compile(r"(translate|rotate)\(([^)]*)\)")


def _affine(transform: str, outer: np.ndarray) -> np.ndarray:
    """`outer` (3x3) composed with an SVG transform attribute made of translate() and rotate() steps."""
    matrix = outer.copy()
    for kind, arguments in _TRANSFORM.findall(transform or ""):
        values = [float(v) for v in re.split(r"[\s,]+", arguments.strip())]
        if kind == "translate":
            step = np.array([[1, 0, values[0]], [0, 1, values[1] if len(values) > 1 else 0], [0, 0, 1]])
        else:
            a = math.radians(values[0])
            step = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        matrix = matrix @ step
    return matrix


def overflowing_texts(svg: str) -> list[str]:
    """The texts of an SVG that would not fit inside it when drawn in a wide font, and those already cut short
    with an ellipsis by the renderer. Each text's baseline, from its anchor, is placed by the transforms above it."""
    root = ET.fromstring(svg)
    width, height = float(root.get("width")), float(root.get("height"))
    found = []

    def visit(element, matrix):
        matrix = _affine(element.get("transform"), matrix)
        if element.tag == f"{SVG}text" and (element.text or "").strip():
            text = element.text
            size = float(element.get("font-size", "10px").rstrip("px"))
            length = len(text) * size * WIDE_FONT["bold" if element.get("font-weight") == "bold" else "normal"]
            start = {"start": 0.0, "middle": -length / 2, "end": -length}[element.get("text-anchor", "start")]
            ends = [matrix @ np.array([x, 0.0, 1.0]) for x in (start, start + length)]
            inside = all(-0.5 <= x <= width + 0.5 and -0.5 <= y <= height + 0.5 for x, y, _ in ends)
            if not inside or "\u2026" in text:
                found.append(text)
        for child in element:
            visit(child, matrix)

    visit(root, np.eye(3))
    return found


def axis_titles(spec: dict) -> list[str]:
    """Every axis title a Vega-Lite spec sets, in its layers too."""
    titles = []
    for channel in ("x", "y"):
        title = spec.get("encoding", {}).get(channel, {}).get("title")
        if title is not None:
            titles.append(title)
    for layer in spec.get("layer", []):
        titles += axis_titles(layer)
    return titles


def check_png(svg: str, path) -> None:
    """Render the SVG to a PNG at `path`, and check it is one of the SVG's size."""
    png = plots.vl_convert().svg_to_png(svg, scale=1.0)
    path.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.fromstring(svg)
    size = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
    assert size == (round(float(root.get("width"))), round(float(root.get("height"))))


def test_overflow_check_finds_text_past_the_edge_and_ellipses():
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><g transform="translate(150,0)">'
        '<text text-anchor="start" transform="translate(16,9)" font-size="10px">finetuned embedder</text>'
        '<text transform="translate(0,30)" font-size="10px">ok</text><text font-size="10px">cut\u2026</text>'
        '</g><text text-anchor="middle" transform="translate(-20,50) rotate(-90)" font-size="12px">NDCG@10</text>'
        "</svg>"
    )
    assert overflowing_texts(svg) == ["finetuned embedder", "cut\u2026", "NDCG@10"]


def test_ndcg_svg_reads_well_with_long_system_names(tmp_path):
    rows = [
        {"dim": dim, "base": 0.4 + dim / 1000, "finetuned": 0.45 + dim / 1000, "finetuned+reranker_only": 0.5}
        for dim in (384, 256, 128, 64, 32)
    ]
    spec = plots.ndcg_by_dimension_spec(rows)
    assert spec["encoding"]["color"]["legend"]["labelLimit"] == 0 and spec["title"]["limit"] == 0
    assert not set(axis_titles(spec)) & PLACEHOLDER_TITLES
    assert "NDCG@10" in spec["encoding"]["y"]["title"] and "dimension" in spec["encoding"]["x"]["title"]
    svg = plots.ndcg_by_dimension_svg(rows)
    assert "finetuned embedder + finetuned reranker (reranker order only)" in svg_texts(svg)
    assert overflowing_texts(svg) == []
    check_png(svg, tmp_path / "ndcg_by_dim.png")


def test_every_dvc_plot_has_a_template_titles_and_axis_labels():
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    for plot in declared:
        ((name, props),) = plot.items()
        template = REPO / ".dvc" / "plots" / f"{props['template']}.json"
        assert template.exists(), f"{name}: no template {template.name} in .dvc/plots"
        assert len(props["title"]) <= 60, f"{name}: a title longer than the chart is wide"
        for label in ("x_label", "y_label"):
            assert props[label] not in PLACEHOLDER_TITLES and "(" in props[label], f"{name}: {label} without a unit"


def synthetic_live(repo) -> None:
    """Training curves as DVCLive writes them (a noisy loss per step, an evaluation at a few steps) and the evaluate
    stage's NDCG@10-by-dimension rows, at the paths dvc.yaml's plots read."""
    rng = np.random.default_rng(0)
    curves = {
        "dvclive/train_embedder/plots/metrics/loss.tsv": ("loss", np.arange(25), 5.0),
        "dvclive/train_reranker/plots/metrics/loss.tsv": ("loss", np.arange(400), 0.7),
        "dvclive/train_reranker/plots/metrics/eval/held_out_ndcg@10.tsv": ("held_out_ndcg@10", [200, 400], None),
    }
    for path, (column, steps, start) in curves.items():
        if start is None:
            values = [0.9521625507950213, 0.9634718483307358]
        else:
            values = [start * (0.3 + 0.7 * math.exp(-s / len(steps) * 3)) * rng.uniform(0.5, 1.5) for s in steps]
        lines = [f"step\t{column}"] + [f"{s}\t{v}" for s, v in zip(steps, values)]
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("\n".join(lines) + "\n")
    rows = [{"dim": d, "base": 0.41 + d / 1500, "finetuned": 0.49 + d / 1600} for d in (384, 256, 128, 64, 32)]
    (repo / "metrics").mkdir()
    (repo / "metrics" / "ndcg_by_dim.json").write_text(json.dumps(rows))


@pytest.mark.e2e  # dvc plots show
def test_project_plots_render_readably(tmp_path):
    """dvc.yaml's plots with their templates, on synthetic DVCLive curves: every one drawn, rendered to PNG, with
    axis titles that are not field names, nothing cut off, and the noisy loss curves smoothed over the faint raw."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": declared}, sort_keys=False))
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")
    synthetic_live(repo)

    shown = dvc_plots.dvc_plots_json(repo)
    assert not shown.get("errors") and len(shown["data"]) == len(declared)
    written = dvc_plots.render_dvc_plots(tmp_path / "out", repo=repo)
    assert "No data yet" not in written[-1].read_text()
    for plot in declared:
        ((name, props),) = plot.items()
        spec = shown["data"][name][0]["content"]
        titles = axis_titles(spec)
        assert props["x_label"] in titles and props["y_label"] in titles, name
        assert not set(titles) & PLACEHOLDER_TITLES, name
        assert spec["title"]["text"] == props["title"] and spec["title"]["limit"] == 0
        legends = [spec["encoding"][key]["legend"] for key in ("color", "strokeDash") if key in spec["encoding"]]
        assert legends and all(legend["labelLimit"] == 0 and legend["orient"] == "bottom" for legend in legends)
        if props["template"] == "training_curve":  # the raw curve faint, a smoothed one over it
            raw, smoothed = spec["layer"]
            assert raw["mark"]["opacity"] < 0.5 and "transform" not in raw
            assert smoothed["transform"][0]["loess"] == spec["layer"][0]["encoding"]["y"]["field"]
            assert {"name": "smooth"}.items() <= spec["params"][0].items() and spec["params"][0]["value"] >= 0.2

    svgs = [path for path in written if path.suffix == ".svg"]
    assert len(svgs) == len(declared)
    for path in svgs:
        svg = path.read_text()
        assert overflowing_texts(svg) == [], path.name
        check_png(svg, path.with_suffix(".png"))
    held_out = next(path for path in svgs if path.name.startswith("reranker-held-out")).read_text()
    assert {"0.9522", "0.9635"} <= set(svg_texts(held_out))  # each evaluation labelled with its value
