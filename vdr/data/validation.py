"""The validation split: training documents held out of training, on which the evaluate stage makes its choices
(whether the reranker is used, at which fusion weight) so that nothing is tuned on the held-out test set.

    held = validation_documents(documents, share, seed)     # a seeded share of the distinct documents
    write_validation_set(folder, rows, shard_size)           # their (page, query) rows in the BEIR layout

The generate stage carves it from the training rows after their queries exist (every source), so the mining and
training stages never see a validation page, and the test set (data/pages/eval) is untouched. A document is a
file of your own (`document` column), or a page where the source has no documents (docstrings, the Hub dataset).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vdr.data.corpus import stable_rank
from vdr.io.qrels import write_qrels
from vdr.io.tables import write_shards

CORPUS_SCHEMA = pa.schema(
    [("id", pa.string()), ("image", pa.binary()), ("text", pa.string()), ("width", pa.int32()), ("height", pa.int32())]
)
QUERY_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])
NO_SPLIT = "No validation split (generate.validation_share: 0): evaluate uses the preset evaluate.fusion_weight.\n"


def validation_documents(documents: list[str], share: float, seed: int) -> set[str]:
    """A seeded `share` of the distinct `documents` (rounded; at least one, and never all of them, when share > 0)."""
    distinct = sorted(set(documents), key=lambda document: stable_rank("validation:" + document, seed))
    if share <= 0 or len(distinct) < 2:
        return set()
    count = min(max(round(share * len(distinct)), 1), len(distinct) - 1)
    return set(distinct[:count])


def write_validation_set(folder: Path, rows: list[dict], shard_size: int) -> dict:
    """`rows` (id, image, text, width, height, query; a page may have several queries) in the BEIR layout of
    data/pages/eval: the distinct pages as corpus/, one query per row (`v-<page>-<n>`), and qrels naming each query's
    own page. No rows: only a README saying there is no split. Returns the counts for metrics/generate.json."""
    folder.mkdir(parents=True)
    if not rows:
        (folder / "README.md").write_text(NO_SPLIT)
        return {"validation_queries": 0, "validation_pages": 0}
    pages = {row["id"]: {name: row[name] for name in CORPUS_SCHEMA.names} for row in rows}
    write_shards(folder / "corpus", list(pages.values()), CORPUS_SCHEMA, shard_size)
    query_ids = [f"v-{row['id']}-{n}" for n, row in enumerate(rows)]
    queries = [{"id": q, "text": row["query"]} for q, row in zip(query_ids, rows)]
    pq.write_table(pa.Table.from_pylist(queries, schema=QUERY_SCHEMA), folder / "queries.parquet")
    write_qrels(folder / "qrels.tsv", {q: {row["id"]: 1} for q, row in zip(query_ids, rows)})
    return {"validation_queries": len(rows), "validation_pages": len(pages)}
