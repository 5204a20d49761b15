"""Every plot of dvc.yaml as static SVG in one page, drawn offline.

    python -m vdr.evaluation.dvc_plots [--out DIR] [--repo DIR]      (prints the path of DIR/index.html)

`dvc plots show` writes an index.html that loads vega, vega-lite and vega-embed from a CDN, so on an offline
machine its page is blank. Here DVC still fills the plot templates with their data (`dvc plots show --json`), and
vl-convert (a Vega-Lite renderer bundled in a Python wheel) turns each spec into SVG without a network or a browser.
The page inlines those SVGs: nothing on it is fetched.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from vdr.evaluation.plots import PlotError, spec_to_svg, vl_convert


def dvc_plots_json(repo: str | Path = ".") -> dict:
    """`dvc plots show --json` in `repo`, parsed: {"data": {name: [renderer]}, "errors": [...]} with filled specs.

    Run as a subprocess of this interpreter, so the DVC of this environment answers; DVC's command line is its
    stable interface, its Python internals are not.
    """
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    command = [sys.executable, "-m", "dvc", "plots", "show", "--json"]
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    shown = " ".join(command[2:])
    if result.returncode != 0:
        raise PlotError(f"`{shown}` failed in {repo} (exit {result.returncode}):\n{result.stderr.strip()}")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as error:
        output = f"{result.stdout}\n{result.stderr}".strip()
        raise PlotError(f"`{shown}` printed no JSON ({error}):\n{output}") from error


def _slug(name: str, taken: set[str]) -> str:
    """A file name for the plot named `name`: lower case, dashes, at most 80 characters, unique among `taken`."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80].strip("-") or "plot"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def _raise_unreadable(errors: list[dict]) -> None:
    """Fail on errors that belong to no plot: DVC could not read dvc.yaml itself, and would exit 0 with no plots."""
    unnamed = [f"{error.get('type')}: {error.get('msg')}" for error in errors if not error.get("name")]
    if unnamed:
        raise PlotError("`dvc plots show --json` could not read the plot definitions:\n" + "\n".join(unnamed))


def _problems(errors: list[dict]) -> dict[str, list[str]]:
    """DVC's load errors grouped by plot name, each as "source: message" (a missing file before `dvc repro`)."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        source = error.get("source") or error.get("rev", "")
        grouped.setdefault(error.get("name", ""), []).append(f"{source}: {error.get('msg') or error.get('type')}")
    return grouped


def _section(name: str, slug: str, svg: str, problems: list[str]) -> str:
    """One plot on the page: its title, the inline SVG, and any sources DVC could not read."""
    notes = "".join(f"<li>{html.escape(problem)}</li>" for problem in problems)
    missing = f'<ul class="missing">{notes}</ul>' if notes else ""
    return f'<section id="{slug}">\n<h2>{html.escape(name)}</h2>\n{missing}{svg}\n</section>\n'


def _no_data_section(problems: dict[str, list[str]]) -> str:
    """The plots that dvc.yaml declares but have no data yet, with why."""
    items = "".join(
        f"<li><b>{html.escape(name)}</b><ul>{''.join(f'<li>{html.escape(p)}</li>' for p in sources)}</ul></li>"
        for name, sources in problems.items()
    )
    advice = "<p>Run <code>dvc repro</code> to make them.</p>"
    return f'<section id="no-data">\n<h2>No data yet</h2>\n{advice}\n<ul>{items}</ul>\n</section>\n'


def _page(sections: list[str]) -> str:
    """The self-contained HTML page: inline SVGs and a little CSS, no scripts."""
    style = (
        "body{font-family:sans-serif;margin:2em}section{margin-bottom:2em}"
        ".missing{color:#a33}svg{max-width:100%;height:auto}"
    )
    body = "".join(sections) or "<p>dvc.yaml declares no plots.</p>\n"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>DVC plots</title>\n'
        f"<style>{style}</style>\n</head>\n<body>\n<h1>DVC plots</h1>\n{body}</body>\n</html>\n"
    )


def render_dvc_plots(output_dir: str | Path = "dvc_plots", repo: str | Path = ".") -> list[Path]:
    """Draw every plot `repo`'s dvc.yaml declares as output_dir/<slug>.svg, and output_dir/index.html showing them.

    Works offline and on a fresh clone: plots whose data files do not exist yet are listed on the page as having
    no data, not drawn. Returns the written files, index.html last.
    """
    vl_convert()  # fail on a missing vl-convert before running dvc
    shown = dvc_plots_json(repo)
    _raise_unreadable(shown.get("errors", []))
    problems = _problems(shown.get("errors", []))
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written, sections, taken = [], [], set()
    for name, renderers in shown.get("data", {}).items():
        for renderer in renderers:
            if renderer.get("type") != "vega":
                problems.setdefault(name, []).append(f"a {renderer.get('type')} plot: open it with `dvc plots show`")
                continue
            slug = _slug(name, taken)
            svg = spec_to_svg(renderer["content"], prefix=f"{slug}-")
            path = output / f"{slug}.svg"
            path.write_text(svg, encoding="utf-8")
            written.append(path)
            sections.append(_section(name, slug, svg, problems.pop(name, [])))
    if problems:
        sections.append(_no_data_section(problems))
    index = output / "index.html"
    index.write_text(_page(sections), encoding="utf-8")
    return written + [index]


def main(argv: list[str] | None = None) -> int:
    """The command line: draw the plots, print where the page is, or say what went wrong."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="dvc_plots", help="folder for the SVGs and index.html (default: dvc_plots)")
    parser.add_argument("--repo", default=".", help="the DVC repository whose plots to draw (default: here)")
    args = parser.parse_args(argv)
    try:
        written = render_dvc_plots(args.out, args.repo)
    except PlotError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(written[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
