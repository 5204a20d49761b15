"""Small inputs for running one stage in a temporary folder, and a folder's bytes to compare before and after.

raw = typeset_raw(tmp_path / "raw")                    # data/raw as fetch writes it for typeset documents
params = render_params(tmp_path)                       # params.yaml as committed, render on one worker
folder = png_documents(tmp_path / "docs", 3)           # your own documents: PNG pages
before = tree(tmp_path / "data/rendered")              # {relative path: bytes}
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from tests.support.images import page_png
from tests.support.repo import REPO
from vdr.data.layout import write_layout

BODY = "A page long enough to typeset, with a paragraph of text about {name} and what it returns."


def typeset_raw(root: Path) -> Path:
    """data/raw as fetch writes it for typeset documents: train.parquet and eval/ (documents, queries, qrels)."""
    (root / "eval").mkdir(parents=True)
    page = lambda name: {"id": name, "group": "g", "title": f"{name}()", "body": BODY.format(name=name)}  # noqa: E731
    pq.write_table(
        pa.Table.from_pylist([dict(page(f"train-{i}"), query=f"what does train {i} give") for i in range(3)]),
        root / "train.parquet",
    )
    pq.write_table(pa.Table.from_pylist([page(f"doc-{i}") for i in (1, 2, 3)]), root / "eval" / "documents.parquet")
    pq.write_table(
        pa.table({"id": ["q:doc-1", "q:doc-2"], "text": ["first question", "second question"]}),
        root / "eval" / "queries.parquet",
    )
    (root / "eval" / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq:doc-1\tdoc-1\t1\nq:doc-2\tdoc-2\t1\n")
    write_layout(root, "docstrings", "typeset")
    return root


def render_params(folder: Path) -> Path:
    """params.yaml as committed, render on one worker, written into `folder`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["render"].update(workers=1)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


def png_documents(folder: Path, count: int) -> Path:
    """`count` one-page documents as PNG files (each its own bytes) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (folder / f"page-{number}.png").write_bytes(page_png(number))
    return folder


def documents_params(folder: Path, documents: Path) -> Path:
    """A params.yaml whose fetch section reads `documents` (fetch.source documents), written into `folder`."""
    fetch = {"source": "documents", "path": str(documents), "eval_share": 0.5}
    (folder / "params.yaml").write_text(yaml.safe_dump({"fetch": fetch}))
    return folder / "params.yaml"


def publish_inputs(root: Path) -> dict[str, Path]:
    """What the publish stage reads (a dry run), but the model: params.yaml as committed and reports/results.json."""
    (root / "reports").mkdir(parents=True, exist_ok=True)
    system = {"ndcg@10": 0.7, "mrr@10": 0.6, "recall@10": 0.8}
    metrics = {"base": {**system, "dims": {"384": system}}, "finetuned": {**system, "dims": {"384": system}}}
    (root / "reports/results.json").write_text(json.dumps(metrics))
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    return {"params": root / "params.yaml", "metrics": root / "reports/results.json"}


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (names relative to it) with its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def plant(folder: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    """Write `files` under `folder` (a previous output to keep); return them."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files
