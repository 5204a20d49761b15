"""The NDCG@10-by-dimension picture of reports/results.md and the model card, as static SVG drawn offline.

vl-convert (a Vega-Lite renderer bundled in a Python wheel) turns a Vega-Lite spec into SVG without a network or a
browser; element ids are made stable so the same data gives the same bytes.
"""

from __future__ import annotations

import re

from vdr.evaluation.report import ROW_LABELS

TITLE = "NDCG@10 by embedding dimension"
SUBTITLE = "held-out set; each dimension: the full-size embeddings truncated and renormalised"

# Text is measured by the renderer in its own font, and a viewer may draw the SVG in a wider one: legends go below
# the chart (long labels, such as "finetuned embedder + finetuned reranker", get the chart's width), nothing is cut
# short with an ellipsis (limits 0), and the right padding leaves room for wider glyphs.
TITLE_STYLE = {"anchor": "start", "limit": 0, "subtitleFontSize": 10, "subtitleColor": "#555"}
LEGEND = {"orient": "bottom", "direction": "vertical", "labelLimit": 0, "titleLimit": 0}
PADDING = {"left": 5, "top": 5, "right": 30, "bottom": 5}
CONFIG = {"axis": {"titleFontSize": 12, "labelFontSize": 11, "titleLimit": 0}, "legend": {"labelFontSize": 11}}


INSTALL_HINT = "pip install -r requirements.lock"


_ID_MENTION = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


class PlotError(RuntimeError):
    """A plot could not be drawn: a missing dependency or a failing `dvc` command, with what to do about it."""


def vl_convert():
    """The vl_convert module, imported only when a plot is drawn, so that the rest of vdr works without it."""
    try:
        import vl_convert
    except ImportError as error:
        message = f"vl-convert-python is not installed, so plots cannot be drawn offline: {INSTALL_HINT}"
        raise PlotError(message) from error
    return vl_convert


def stable_ids(svg: str, prefix: str = "") -> str:
    """Renumber the SVG's element ids (clip paths, gradients) in order of first mention, as `{prefix}id{n}`.

    Vega numbers clip paths with a counter that lives as long as the process, so the same chart drawn twice gets
    different ids: renumbering makes the output depend on the input only. A distinct prefix per picture keeps ids
    unique when several SVGs are inlined into one HTML page (a repeated id would clip one chart by another's path).
    """
    defined = {match.group(2) for match in _ID_MENTION.finditer(svg) if match.group(1).startswith("id")}
    names: dict[str, str] = {}

    def rename(match: re.Match) -> str:
        old = match.group(2)
        if old not in defined:
            return match.group(0)
        new = names.setdefault(old, f"{prefix}id{len(names) + 1}")
        return match.group(1) + new

    return _ID_MENTION.sub(rename, svg)


def spec_to_svg(spec: dict, prefix: str = "") -> str:
    """A Vega-Lite spec (its data inline) as SVG text, drawn by vl-convert with every network fetch refused."""
    svg = vl_convert().vegalite_to_svg(spec, allowed_base_urls=[])
    return stable_ids(svg, prefix)


def _systems(plot_data: list[dict]) -> list[str]:
    """The systems in the rows (every key but `dim`): the report's order first, then any others as they appear."""
    present = list(dict.fromkeys(key for row in plot_data for key in row if key != "dim"))
    return [s for s in ROW_LABELS if s in present] + [s for s in present if s not in ROW_LABELS]


def ndcg_by_dimension_spec(plot_data: list[dict]) -> dict:
    """The Vega-Lite spec of NDCG@10 against the embedding dimension, one line per system.

    `plot_data` is what vdr.evaluation.report.ndcg_by_dimension returns (metrics/ndcg_by_dim.json): rows like
    {"dim": 384, "base": 0.68, "finetuned": 0.72}. The x axis is log2, ticked at the measured dimensions only,
    since Matryoshka dimensions halve from one to the next: equal steps read as equal halvings.
    """
    if not plot_data:
        raise PlotError("no NDCG@10-by-dimension rows to plot (metrics/ndcg_by_dim.json is empty)")
    systems = _systems(plot_data)
    labels = [ROW_LABELS.get(system, system) for system in systems]
    rows = [
        {"dim": int(row["dim"]), "system": label, "ndcg": float(row[system])}
        for system, label in zip(systems, labels)
        for row in sorted(plot_data, key=lambda row: int(row["dim"]))
        if row.get(system) is not None
    ]
    dims = sorted({row["dim"] for row in rows})
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": TITLE, "subtitle": SUBTITLE, **TITLE_STYLE},
        "width": 440,
        "height": 260,
        "padding": PADDING,
        "data": {"values": rows},
        "mark": {"type": "line", "point": {"filled": True, "size": 50}, "strokeWidth": 2},
        "encoding": {
            "x": {
                "field": "dim",
                "type": "quantitative",
                "title": "embedding dimension (Matryoshka truncation, log2 scale)",
                "scale": {"type": "log", "base": 2, "domain": [dims[0], dims[-1]]},
                "axis": {"values": dims, "format": "d", "grid": True},
            },
            "y": {
                "field": "ndcg",
                "type": "quantitative",
                "title": "NDCG@10 (0 to 1, higher is better)",
                "scale": {"zero": False},
            },
            "color": {"field": "system", "type": "nominal", "title": "system", "sort": labels, "legend": LEGEND},
        },
        "config": CONFIG,
    }


def ndcg_by_dimension_svg(plot_data: list[dict]) -> str:
    """SVG text of NDCG@10 by embedding dimension, for reports/results.md and the model card; same rows, same bytes."""
    return spec_to_svg(ndcg_by_dimension_spec(plot_data))
