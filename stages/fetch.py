"""fetch: build the raw retrieval corpus: training queries with their pages, and a held-out eval set.

    python stages/fetch.py            (run by `dvc repro fetch`)

fetch.source names a registered source (vdr/data/sources.py: docstrings, hub, local, documents), which writes
data/raw in the layout it declares: train.parquet (query + page) and eval/ (documents, queries, qrels), or for
your own documents documents.parquet (id, name, kind, split, pages, content); data/raw/layout.json records the
source and its layout for render (vdr/data/layout.py). metrics/fetch.json has the counts and where the data came
from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.config.fetch import Fetch
from vdr.config.section import load_sections
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


def main(paths: Paths) -> None:
    # 1. Parameters: the source and its settings
    params = load_sections(paths.params, fetch=Fetch).fetch
    source = SOURCES[params.source]

    # 2. The raw corpus in the source's layout, written atomically, with that layout declared for render
    with atomic_path(paths.output) as raw:
        raw.mkdir()
        with fields_under("fetch"):  # e.g. your documents' folder: fetch.path
            metrics = source.fetch(params, raw)
        write_layout(raw, params.source, source.layout)

    # 3. Counts and where the data came from
    write_json(paths.metrics, metrics)


if __name__ == "__main__":
    with stage_process("fetch"):
        main(parse_args(Paths, __doc__))
