"""fetch: build the raw retrieval corpus: training queries with their pages, and a held-out eval set.

    python stages/fetch.py            (run by `dvc repro fetch`)

fetch.source names a registered source (vdr/data/sources.py: docstrings, hub, local, documents), which writes
data/raw in the layout it declares: train.parquet (query + page) and eval/ (documents, queries, qrels), or for
your own documents documents.parquet (id, name, kind, split, pages, content); data/raw/layout.json records the
source and its layout for render (vdr/data/layout.py). metrics/fetch.json has the counts and where the data came
from. A folder read from fetch.path that changed after the check stage fingerprinted it (metrics/check.json), or
while fetch read it, stops the stage naming what changed (vdr/data/folder.py SteadyFolder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vdr.config.fetch import Fetch
from vdr.config.section import load_sections
from vdr.data.folder import FOLDER_SOURCES, SteadyFolder
from vdr.data.layout import write_layout
from vdr.data.sources import SOURCES
from vdr.errors import fields_under
from vdr.io.files import atomic_path, write_json
from vdr.stage import parse_args, stage_process


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    output: Path = Path("data/raw")
    metrics: Path = Path("metrics/fetch.json")
    check: Path = Path("metrics/check.json")  # the fingerprint of fetch.path the check stage recorded


def checked_fingerprint(check: Path) -> str | None:
    """The fingerprint of fetch.path that the check stage recorded (None: no record, e.g. fetch run by hand)."""
    if not check.is_file():
        return None
    return (json.loads(check.read_text()).get("inputs") or {}).get("fetch.path")


def main(paths: Paths) -> None:
    # 1. Parameters: the source and its settings
    params = load_sections(paths.params, fetch=Fetch).fetch
    source = SOURCES[params.source]

    # 2. A folder outside the repository (fetch.path) must be as the check stage recorded it, and stay so while it
    #    is read: the data written and the fingerprint DVC records describe one state of it
    with fields_under("fetch"):
        steady = None
        if params.source in FOLDER_SOURCES:
            steady = SteadyFolder(params.path, FOLDER_SOURCES[params.source], checked_fingerprint(paths.check))

    # 3. The raw corpus in the source's layout, written atomically, with that layout declared for render
    with atomic_path(paths.output) as raw:
        raw.mkdir()
        with fields_under("fetch"):  # e.g. your documents' folder: fetch.path
            try:
                metrics = source.fetch(params, raw)
            except OSError:
                if steady is not None:
                    steady.require_unchanged()  # a file removed while it was read: say so, not only its name
                raise
            if steady is not None:
                steady.require_unchanged()
        write_layout(raw, params.source, source.layout)

    # 4. Counts and where the data came from
    write_json(paths.metrics, metrics)


if __name__ == "__main__":
    with stage_process("fetch"):
        main(parse_args(Paths, __doc__))
