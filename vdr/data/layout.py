"""The raw layouts a fetch source writes in data/raw, and the declaration that tells render which one it finds.

    typeset       train.parquet (id, group, title, body, query) and eval/ (documents.parquet: id, group, title,
                  body; queries.parquet; qrels.tsv): documents that arrive as text, for render to typeset
    screenshots   train.parquet (id, query, image, negative_*) and eval/ (documents.parquet: id, image; queries;
                  qrels): pages that arrive as images, for render to normalise
    documents     documents.parquet (id, name, kind, split, pages, content): your own files, no queries yet

fetch writes data/raw/layout.json ({"source": ..., "layout": ...}); render reads it rather than guessing from the
files it finds.
"""

from __future__ import annotations

import json
from pathlib import Path

LAYOUTS = ("typeset", "screenshots", "documents")
LAYOUT_FILE = "layout.json"


def write_layout(raw: Path, source: str, layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"fetch.source {source}: declares the raw layout '{layout}', not one of {LAYOUTS}")
    (raw / LAYOUT_FILE).write_text(json.dumps({"source": source, "layout": layout}) + "\n")


def read_layout(raw: Path) -> str:
    """The layout fetch declared for `raw`; a folder without a declaration was written by an older fetch."""
    path = raw / LAYOUT_FILE
    if not path.is_file():
        raise ValueError(f"{path}: missing; {raw} was not written by the fetch stage, run `dvc repro fetch`")
    layout = json.loads(path.read_text()).get("layout")
    if layout not in LAYOUTS:
        raise ValueError(f"{path}: layout '{layout}' is not one of {LAYOUTS}; run `dvc repro fetch`")
    return layout
