"""render: typeset every document to an A4 PDF and rasterise its first page with pypdfium2, or, when
the documents arrive as screenshots (the layout fetch declared in data/raw/layout.json), normalise them: RGB, at most
render.max_pixels;
your own documents (fetch.source: documents): every page of every PDF rasterised at render.dpi with its text
layer, PNG/JPEG pages normalised; every page at most render.max_pixels (a larger one is scaled down, its aspect
kept, and counted in metrics/render.json), and a document that fails is named by its file.

    python stages/render.py           (run by `dvc repro render`)

Writes Parquet shards with the page image (PNG bytes) and the page's PDF text layer:
  data/rendered/train/part-*.parquet  id, query, image, text (+ negative_0.. images when the dataset gives negatives)
  data/rendered/eval/                 BEIR layout: corpus/part-*.parquet (id, image, text), queries.parquet, qrels.tsv
Your own documents have no queries yet: train/ and eval/corpus/ hold their pages (id, document, page, image,
text), and the generate stage writes the queries. The generate stage passes the rest on unchanged as data/pages.
Screenshots have no text layer (text is empty). A query whose text appears verbatim on its own page
is dropped (and counted in metrics/render.json). A page that cannot be typeset or decoded stops the
stage with its id; with render.on_bad_page: skip it is dropped instead (a training row, or an eval page
and the queries left without a relevant page) and counted in metrics/render.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq

from vdr.config.render import Render
from vdr.config.section import load_sections
from vdr.data.corpus import query_on_page
from vdr.data.documents import page_rows
from vdr.data.layout import read_layout
from vdr.data.pages import bad_pages, map_pages, normalise_all, render_all
from vdr.io.beir import check_retrieval_set
from vdr.io.files import atomic_path, write_json
from vdr.io.qrels import read_qrels, write_qrels
from vdr.io.tables import read_table, require_columns, write_shards
from vdr.stage import parse_args, stage_process


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    raw: Path = Path("data/raw")
    output: Path = Path("data/rendered")
    metrics: Path = Path("metrics/render.json")


PAGE_SCHEMA = pa.schema(
    [("id", pa.string()), ("image", pa.binary()), ("text", pa.string()), ("width", pa.int32()), ("height", pa.int32())]
)
DOCUMENT_PAGE_SCHEMA = pa.schema([("document", pa.string()), ("page", pa.int32()), *PAGE_SCHEMA])


def main(paths: Paths) -> None:
    # 1. Parameters and inputs
    params = load_sections(paths.params, render=Render).render
    raw = paths.raw
    layout = read_layout(raw)  # what fetch declared it wrote (vdr/data/layout.py)
    if layout == "documents":  # your own documents: pages only, the generate stage adds queries
        render_documents(params, raw / "documents.parquet", paths.output, paths.metrics)
        return
    train = read_table(raw / "train.parquet")
    documents = read_table(raw / "eval" / "documents.parquet")
    queries = read_table(raw / "eval" / "queries.parquet")
    qrels = read_qrels(raw / "eval" / "qrels.tsv")
    screenshots = layout == "screenshots"
    negative_columns = [c for c in train.column_names if c.startswith("negative_")]
    require_columns(queries, ["id", "text"], raw / "eval" / "queries.parquet")
    require_columns(documents, ["id"], raw / "eval" / "documents.parquet")
    check_retrieval_set(  # unique ids, a corpus, qrels that name known queries and pages
        documents["id"].to_pylist(),
        queries["id"].to_pylist(),
        qrels,
        {
            "corpus": raw / "eval" / "documents.parquet",
            "queries": raw / "eval" / "queries.parquet",
            "qrels": raw / "eval" / "qrels.tsv",
        },
    )
    if train.num_rows == 0:
        raise ValueError(f"{raw / 'train.parquet'}: no training rows; the stages after render need at least one")

    # 2. Pages: normalise given screenshots, or typeset and rasterise documents
    if screenshots:
        require_columns(train, ["id", "image", "query"], raw / "train.parquet")
        if params.max_pixels is None:
            raise ValueError(
                "render.max_pixels: the pages arrive as screenshots; set the largest page size in pixels to keep"
            )
        train_ids = train["id"].to_pylist()
        train_pages = normalise_all(
            train_ids, train["image"].to_pylist(), params.max_pixels, params.workers, "normalise train"
        )
        for column in negative_columns:  # the dataset's own hard negatives travel with their row
            negatives = normalise_all(
                train_ids, train[column].to_pylist(), params.max_pixels, params.workers, f"normalise {column}"
            )
            for page, negative in zip(train_pages, negatives):
                page[column] = negative.get("image")
                if "error" in negative:
                    page.setdefault("error", negative["error"])
        eval_pages = normalise_all(
            documents["id"].to_pylist(),
            documents["image"].to_pylist(),
            params.max_pixels,
            params.workers,
            "normalise eval",
        )
    else:
        require_columns(train, ["id", "title", "body", "query"], raw / "train.parquet")
        require_columns(documents, ["id", "title", "body"], raw / "eval" / "documents.parquet")
        if params.dpi is None:
            raise ValueError(
                "render.dpi: the documents arrive as text to typeset; set the rasterising resolution (e.g. 100)"
            )
        train_pages = render_all(train, params.dpi, params.workers, "render train")
        eval_pages = render_all(documents, params.dpi, params.workers, "render eval")

    # 3. A page that failed: stop with its id, or (render.on_bad_page: skip) drop it, and the queries it leaves
    #    without a relevant page
    bad = {
        "train": bad_pages(train_pages, params.on_bad_page, raw / "train.parquet"),
        "eval": bad_pages(eval_pages, params.on_bad_page, raw / "eval"),
    }
    train_rows = [(page, q) for page, q in zip(train_pages, train["query"].to_pylist()) if "error" not in page]
    eval_pages = [page for page in eval_pages if "error" not in page]
    page_text = {page["id"]: page["text"] for page in eval_pages}
    answerable = {q: {d: s for d, s in docs.items() if d in page_text} for q, docs in qrels.items()}
    answerable = {q: docs for q, docs in answerable.items() if any(s > 0 for s in docs.values())}

    # 4. A query must not be readable verbatim on its own page
    kept_train = [dict(page, query=q) for page, q in train_rows if not query_on_page(q, page["text"])]
    rendered = [page for page, _ in train_rows]
    query_text = dict(zip(queries["id"].to_pylist(), queries["text"].to_pylist()))
    kept_qrels = {
        q: docs
        for q, docs in answerable.items()
        if not any(query_on_page(query_text[q], page_text[d]) for d, s in docs.items() if s > 0)
    }
    kept_queries = [{"id": q, "text": query_text[q]} for q in query_text if q in kept_qrels]

    # 5. Write shards atomically
    with atomic_path(paths.output) as pages:
        train_schema = pa.schema(
            [*PAGE_SCHEMA, pa.field("query", pa.string()), *[pa.field(c, pa.binary()) for c in negative_columns]]
        )
        write_shards(pages / "train", kept_train, train_schema, params.shard_size)
        write_shards(pages / "eval" / "corpus", eval_pages, PAGE_SCHEMA, params.shard_size)
        pq.write_table(
            pa.Table.from_pylist(kept_queries, schema=pa.schema([("id", pa.string()), ("text", pa.string())])),
            pages / "eval" / "queries.parquet",
        )
        write_qrels(pages / "eval" / "qrels.tsv", kept_qrels)

    write_json(
        paths.metrics,
        {
            "train_pages": len(kept_train),
            "eval_pages": len(eval_pages),
            "eval_queries": len(kept_queries),
            "dropped_query_on_page": {
                "train": len(train_rows) - len(kept_train),
                "eval": len(answerable) - len(kept_qrels),
            },
            "skipped_bad_pages": {**bad, "eval_queries_without_page": len(qrels) - len(answerable)},
            "dpi": params.dpi,
            "max_pixels": params.max_pixels if screenshots else None,
            "mean_page_text_chars": round(
                sum(len(p["text"]) for p in eval_pages + rendered) / max(len(eval_pages) + len(rendered), 1), 1
            ),
        },
    )


def render_documents(params, documents_path: Path, output: Path, metrics_path: Path) -> None:
    # 1. The documents fetch kept, each with its split and how many pages to render
    documents = read_table(documents_path)
    require_columns(documents, ["id", "name", "kind", "split", "pages", "content"], documents_path)
    if params.dpi is None or params.max_pixels is None:
        raise ValueError(
            "render.dpi and render.max_pixels: your documents' PDF pages are rasterised at render.dpi, and every page "
            "(PDF or PNG/JPEG) is kept at most render.max_pixels; set both (e.g. 100 and 4000000)"
        )

    # 2. Every page: rasterised with its text layer (PDF) or normalised (image), at most render.max_pixels either
    #    way; a document that fails is named by its file
    pages, bad, skipped, scaled = {}, {}, [], 0
    for split in ("train", "eval"):
        rows = documents.filter(pa.compute.equal(documents["split"], split)).to_pylist()
        jobs = [(r["id"], r["name"], r["kind"], r["content"], r["pages"], params.dpi, params.max_pixels) for r in rows]
        rendered = map_pages(page_rows, jobs, params.workers, f"render {split} documents")
        bad[split] = bad_pages(rendered, params.on_bad_page, documents_path, "document(s)")
        names = {r["id"]: r["name"] for r in rows}
        skipped += [{"file": names[d["id"]], "why": d["error"]} for d in rendered if "error" in d]
        pages[split] = [row for document in rendered if "error" not in document for row in document["rows"]]
        scaled += sum(document["scaled_down"] for document in rendered if "error" not in document)
    if scaled:
        print(f"{scaled} page(s) above render.max_pixels ({params.max_pixels:,}) at render.dpi scaled down to it")
    if not pages["train"] or not pages["eval"]:
        empty = "train" if not pages["train"] else "eval"
        raise ValueError(f"{documents_path}: no {empty} page could be rendered; the stages after render need both")

    # 3. Write shards atomically
    with atomic_path(output) as folder:
        write_shards(folder / "train", pages["train"], DOCUMENT_PAGE_SCHEMA, params.shard_size)
        write_shards(folder / "eval" / "corpus", pages["eval"], DOCUMENT_PAGE_SCHEMA, params.shard_size)

    every = pages["train"] + pages["eval"]
    write_json(
        metrics_path,
        {
            "train_pages": len(pages["train"]),
            "eval_pages": len(pages["eval"]),
            "pages_without_text_layer": sum(not page["text"].strip() for page in every),  # read through OCR
            "skipped_bad_documents": bad,
            "skipped_files": skipped,  # each with why, its path relative to fetch.path
            "pages_scaled_down": scaled,  # above render.max_pixels at render.dpi
            "dpi": params.dpi,
            "max_pixels": params.max_pixels,
            "mean_page_text_chars": round(sum(len(p["text"]) for p in every) / len(every), 1),
        },
    )
    print(f"pages: {len(pages['train'])} train, {len(pages['eval'])} held out")


if __name__ == "__main__":
    with stage_process("render"):
        main(parse_args(Paths, __doc__))
