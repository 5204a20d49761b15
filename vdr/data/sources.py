"""Where the raw corpus comes from: one registered source per `fetch.source`, each declaring the raw layout it writes
(vdr/data/layout.py).

    source = SOURCES[params.fetch.source]
    metrics = source.fetch(params.fetch, raw)      # writes the (empty, fresh) folder `raw`; returns metrics/fetch.json
    write_layout(raw, params.fetch.source, source.layout)

  docstrings  the offline corpus (the `cpu` profile), split into train and eval by document group;
              pages are documents to typeset (id, group, title, body)
  hub         a Hub dataset in the layout of tomaarsen/llamaindex-vdr-en-train-preprocessed, at fetch.revision;
              pages are screenshots (image bytes), the eval set built exactly as the reference post builds it
  local       the same layout from a folder on disk (one folder per config)
  documents   your own PDFs and page images (fetch.path, searched recursively), with no queries: each file is
              identified by its content's hash (a duplicate counted once) and the split into train and held-out
              is by document (vdr/data/documents.py); the generate stage writes their queries

A new source is a function `(params.fetch, raw folder) -> metrics`, a line in SOURCES naming the layout it writes,
and its schema in vdr/config/fetch.py.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vdr.data.corpus import stable_rank
from vdr.data.datasets import dataset_rows, hub_commit
from vdr.data.docstrings import docstring_entries, package_version
from vdr.data.documents import read_documents, split_documents
from vdr.data.folder import scan_folder
from vdr.io.qrels import write_qrels


def split_by_group(entries, num_eval_pages: int, seed: int):
    """Whole groups (a package's sub-package) go to eval, in a seeded order, until they hold enough pages."""
    by_group = defaultdict(list)
    for entry in entries:
        by_group[entry.group].append(entry)
    eval_groups, eval_entries = [], []
    for group in sorted(by_group, key=lambda g: stable_rank(g, seed)):
        if len(eval_entries) >= num_eval_pages:
            break
        eval_groups.append(group)
        eval_entries.extend(by_group[group])
    train_entries = [e for e in entries if e.group not in set(eval_groups)]
    return train_entries, eval_entries, eval_groups


def fetch_dataset(params, raw: Path) -> dict:
    """fetch.source hub or local: both configs of a dataset in the reference layout, images as their bytes."""
    # 1. Both configs, images kept as their encoded bytes
    skipped = {}
    train_rows, queries, documents, qrels, fingerprints = dataset_rows(params, skipped)
    print(
        f"train rows {len(train_rows)}; eval: {len(queries)} queries, {len(documents)} pages; "
        f"skipped bad rows {skipped}"
    )

    # 2. Write the raw folder
    binary = (
        [pa.field(column, pa.binary()) for column in train_rows[0] if column.startswith("negative_")]
        if train_rows
        else []
    )
    train_schema = pa.schema([("id", pa.string()), ("query", pa.string()), ("image", pa.binary()), *binary])
    (raw / "eval").mkdir()
    pq.write_table(pa.Table.from_pylist(train_rows, schema=train_schema), raw / "train.parquet")
    pq.write_table(
        pa.Table.from_pylist(documents, schema=pa.schema([("id", pa.string()), ("image", pa.binary())])),
        raw / "eval" / "documents.parquet",
    )
    pq.write_table(
        pa.Table.from_pylist(queries, schema=pa.schema([("id", pa.string()), ("text", pa.string())])),
        raw / "eval" / "queries.parquet",
    )
    write_qrels(raw / "eval" / "qrels.tsv", qrels)

    origin = (
        {"dataset": params.dataset, "revision": params.revision, "commit": hub_commit(params.dataset, params.revision)}
        if params.source == "hub"
        else {"path": params.path}
    )
    return {
        "train_pairs": len(train_rows),
        "eval_queries": len(queries),
        "eval_pages": len(documents),
        "source": params.source,
        **origin,
        "configs": {"train": params.train_config, "eval": params.eval_config},
        "skipped_bad_rows": skipped,
        "fingerprints": fingerprints,
    }


def fetch_documents(params, raw: Path) -> dict:
    """fetch.source documents: your own files, each once, split by document; their queries come later (generate)."""
    # 1. Every PDF and page image under the folder, once per content; unreadable ones named
    folder = Path(params.path).expanduser()
    found = scan_folder(folder)
    documents, duplicates, bad = read_documents(found, folder, params.on_bad_document, params.max_pages_per_document)
    print(f"{len(found)} files in {folder}: {len(documents)} documents, {len(duplicates)} duplicates, {len(bad)} bad")

    # 2. Split by document, seeded: no page of a held-out document is trained on
    train, held_out = split_documents(documents, params.eval_share, params.seed)
    limit = params.max_pages_per_document
    pages = lambda d: d.pages if limit is None else min(d.pages, limit)  # noqa: E731

    # 3. Write the raw folder
    rows = [
        {"id": d.id, "name": d.name, "kind": d.kind, "split": split, "pages": pages(d), "content": d.content}
        for split, part in (("train", train), ("eval", held_out))
        for d in sorted(part, key=lambda d: d.name)
    ]
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("name", pa.string()),
            ("kind", pa.string()),
            ("split", pa.string()),
            ("pages", pa.int32()),
            ("content", pa.binary()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), raw / "documents.parquet")

    collection = hashlib.sha256("\n".join(sorted(d.id for d in documents)).encode()).hexdigest()
    print(
        f"train: {len(train)} documents, {sum(pages(d) for d in train)} pages; "
        f"held out: {len(held_out)} documents, {sum(pages(d) for d in held_out)} pages"
    )
    return {
        "source": "documents",
        "path": str(params.path),
        "documents": len(documents),
        "collection_sha256": collection,  # of the sorted document ids: the same documents, the same hash
        "train_documents": len(train),
        "eval_documents": len(held_out),
        "train_pages": sum(pages(d) for d in train),
        "eval_pages": sum(pages(d) for d in held_out),
        "pages_left_out": sum(d.pages - pages(d) for d in documents),  # past max_pages_per_document
        "kinds": {kind: sum(d.kind == kind for d in documents) for kind in ("pdf", "image")},
        "duplicate_files": [{"file": name, "same_as": first} for name, first in duplicates],
        "skipped_bad_documents": [{"file": name, "why": why} for name, why in bad],
    }


def fetch_docstrings(params, raw: Path) -> dict:
    """fetch.source docstrings: the pinned packages' docstrings, split into train and eval by whole sub-package."""
    # 1. Every usable docstring of the pinned packages
    entries, dropped = docstring_entries(
        params.packages,
        params.min_summary_chars,
        params.max_summary_chars,
        params.min_body_chars,
        params.max_body_chars,
    )
    print(f"{len(entries)} docstrings from {', '.join(params.packages)}; dropped {dropped}")

    # 2. Split by group: no eval document, nor any document of its group, is seen in training
    train_entries, eval_entries, eval_groups = split_by_group(entries, params.num_eval_pages, params.seed)
    if len(eval_entries) < params.num_eval_pages:
        raise ValueError(
            f"fetch.num_eval_pages: asked for {params.num_eval_pages}, "
            f"the packages give only {len(eval_entries)}; add packages or lower it"
        )
    if len(train_entries) < params.num_train_pairs:
        raise ValueError(
            f"fetch.num_train_pairs: asked for {params.num_train_pairs}, "
            f"only {len(train_entries)} remain for training; add packages or lower it"
        )

    # 3. Sample, deterministically: eval pages (all from the eval groups, so they are each other's
    #    near neighbours), eval queries among them, and the training pairs
    by_rank = lambda e: stable_rank(e.doc_id, params.seed)  # noqa: E731
    eval_pages = sorted(eval_entries, key=by_rank)[: params.num_eval_pages]
    eval_queries = sorted(eval_pages, key=lambda e: stable_rank("query:" + e.doc_id, params.seed))[
        : params.num_eval_queries
    ]
    train_pairs = sorted(train_entries, key=by_rank)[: params.num_train_pairs]

    # 4. Write the raw folder
    documents_schema = pa.schema(
        [("id", pa.string()), ("group", pa.string()), ("title", pa.string()), ("body", pa.string())]
    )
    (raw / "eval").mkdir()
    train_rows = [
        {"id": e.doc_id, "group": e.group, "title": e.title, "body": e.body, "query": e.summary} for e in train_pairs
    ]
    pq.write_table(
        pa.Table.from_pylist(train_rows, schema=documents_schema.append(pa.field("query", pa.string()))),
        raw / "train.parquet",
    )
    eval_rows = [{"id": e.doc_id, "group": e.group, "title": e.title, "body": e.body} for e in eval_pages]
    pq.write_table(pa.Table.from_pylist(eval_rows, schema=documents_schema), raw / "eval" / "documents.parquet")
    query_rows = [{"id": f"q:{e.doc_id}", "text": e.summary} for e in eval_queries]
    pq.write_table(
        pa.Table.from_pylist(query_rows, schema=pa.schema([("id", pa.string()), ("text", pa.string())])),
        raw / "eval" / "queries.parquet",
    )
    write_qrels(raw / "eval" / "qrels.tsv", {f"q:{e.doc_id}": {e.doc_id: 1} for e in eval_queries})

    print(
        f"train pairs {len(train_pairs)}; eval: {len(eval_queries)} queries, "
        f"{len(eval_pages)} pages from groups {eval_groups}"
    )
    return {
        "train_pairs": len(train_pairs),
        "eval_queries": len(eval_queries),
        "eval_pages": len(eval_pages),
        "eval_groups": len(eval_groups),
        "docstrings_available": len(entries),
        "dropped": dropped,
        "package_versions": {package: package_version(package) for package in params.packages},
    }


@dataclass(frozen=True)
class Source:
    layout: str  # what it writes in data/raw: one of vdr/data/layout.py LAYOUTS
    fetch: Callable[..., dict]  # (params.fetch, an empty folder) -> the stage's metrics


SOURCES = {
    "docstrings": Source("typeset", fetch_docstrings),
    "hub": Source("screenshots", fetch_dataset),
    "local": Source("screenshots", fetch_dataset),
    "documents": Source("documents", fetch_documents),
}
