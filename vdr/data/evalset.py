"""What a model reads of a page, and the held-out set as every stage, the CLI and the tests load it.

One way to read a page, whoever reads it (mine, train_embedder's evaluator, embed_base, evaluate,
`vdr-eval`):
  models.page_input: image   the page screenshot (the `image` column)
  models.page_input: text    the page's text layer (the `text` column), and for a page whose text layer is
                             empty (a screenshot, a scanned PDF page) the OCR of its image (vdr/data/ocr.py): a
                             text model reads what tesseract reads, never an empty string it could have read

`EvalSet.load(folder)` reads a BEIR-layout set once (vdr/io/beir.py load_beir: ids, queries, qrels
checked) and keeps the queries that have at least one relevant page (a qrels score > 0), in the order of
queries.parquet; the others are counted in `skipped` and reported, never scored as zero or dropped unsaid.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from vdr.data.ocr import ocr_images
from vdr.io.beir import corpus_path, load_beir
from vdr.io.images import decode_page

PAGE_INPUTS = ("text", "image")


def has_text(pages: pa.Table) -> bool:
    """Whether the `text` column holds any text (screenshots come with an empty one)."""
    return "text" in pages.column_names and any(isinstance(t, str) and t.strip() for t in pages["text"].to_pylist())


def page_texts(
    pages: pa.Table, where: str | Path, ocr_cache: Path | None = None, ocr_workers: int | None = None
) -> list[str]:
    """What a text-only model reads of each page: its `text`, and the OCR of its `image` where the text is empty."""
    if has_text(pages):
        texts = pages["text"].to_pylist()
        if None in texts:
            row = texts.index(None)
            raise ValueError(
                f"{where}: column 'text', row {row} (id '{page_ids(pages)[row]}') is null while other pages have "
                "text; write '' for a page without a text layer, or fill it in"
            )
        images = pages["image"] if "image" in pages.column_names else None
        blank = [
            row for row, text in enumerate(texts) if not text.strip() and images is not None and images[row].is_valid
        ]
        if blank:  # pages with no text layer among pages with one: read their images
            ids = page_ids(pages)
            found = [images[row].as_py() for row in blank]
            names = [f"{where}, id '{ids[row]}'" for row in blank]
            for row, text in zip(blank, ocr_images(found, ocr_cache, ocr_workers, names)):
                texts[row] = text
        return texts
    if "image" not in pages.column_names:
        if "text" in pages.column_names:
            raise ValueError(
                f"{where}: the 'text' column is empty in every row and there is no 'image' column to read with "
                "OCR; fill in the page texts or add the page images"
            )
        raise ValueError(f"{where}: the pages need a 'text' or an 'image' column")
    if pages["image"].null_count:
        raise ValueError(
            f"{where}: {pages['image'].null_count} row(s) have no image to read with OCR; "
            "fill the 'image' column or add a 'text' column"
        )
    names = [f"{where}, id '{page_id}'" for page_id in pages["id"].to_pylist()]
    return ocr_images(pages["image"].to_pylist(), ocr_cache, ocr_workers, names)


def read_pages(
    pages: pa.Table,
    page_input: str,
    where: str | Path,
    ocr_cache: Path | None = None,
    ocr_workers: int | None = None,
    decode: bool = True,
    lazy: bool = False,
) -> list:
    """What the models read of each page, as models.page_input says: the screenshots (decoded RGB images, or
    their PNG/JPEG bytes with decode=False; with lazy=True a `Screenshots` sequence that decodes them when read),
    or page_texts (text layer, else OCR)."""
    if page_input not in PAGE_INPUTS:
        raise ValueError(f"models.page_input: '{page_input}' is not one of {PAGE_INPUTS}")
    if page_input == "text":
        return page_texts(pages, where, ocr_cache, ocr_workers)
    if "image" not in pages.column_names:
        raise ValueError(f"{where}: models.page_input is image, but the pages have no 'image' column")
    if lazy and decode:
        return Screenshots(pages["image"], [f"{where}, id '{page_id}'" for page_id in page_ids(pages)])
    images = pages["image"].to_pylist()
    if not decode:
        return images
    return [decode_page(data, f"{where}, id '{page_id}'") for data, page_id in zip(images, page_ids(pages))]


class Screenshots(Sequence):
    """Page screenshots decoded when read, an item or a slice (a list) at a time, never all at once: the encoders
    take them a chunk at a time (vdr/retrieval/encode.py encode_documents), so a corpus of screenshots costs its
    encoded bytes (the Arrow column) plus one chunk of decoded images. A bad image names its page when it is read."""

    decoded_on_read = True

    def __init__(self, images: pa.ChunkedArray | pa.Array, names: list[str]):
        self.images, self.names = images, names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            data = self.images.slice(start, max(0, stop - start)).to_pylist()
            return [decode_page(image, name) for image, name in zip(data, self.names[start:stop])]
        index = int(index) + (len(self) if index < 0 else 0)
        return decode_page(self.images[index].as_py(), self.names[index])


def page_ids(pages: pa.Table) -> list[str]:
    """The pages' ids (the `id` column), or their row numbers where a table has none: what an error names."""
    if "id" in pages.column_names:
        return [str(i) for i in pages["id"].to_pylist()]
    return [f"row {row}" for row in range(pages.num_rows)]


def page_input_for(pages: pa.Table, model) -> str:
    """For a model given without params (vdr-eval): the text layer when the pages have one, else the
    screenshots for a model that reads images, else their OCR."""
    reads_images = not has_text(pages) and "image" in pages.column_names and model.supports("image")
    return "image" if reads_images else "text"


@dataclass(frozen=True)
class EvalSet:
    """A held-out retrieval set: the corpus pages, the queries that have a relevant page, and their qrels.

    `skipped`: how many queries of queries.parquet are not scored, by reason (queries_without_qrels: no qrels line;
    queries_without_relevant_page: qrels lines, but none with a score > 0)."""

    folder: Path
    corpus: pa.Table
    corpus_ids: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    skipped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path) -> EvalSet:
        corpus, queries, qrels = load_beir(folder)
        answerable = {q for q, docs in qrels.items() if any(score > 0 for score in docs.values())}
        query_ids = [q for q in queries if q in answerable]
        skipped = {
            "queries_without_qrels": sum(q not in qrels for q in queries),
            "queries_without_relevant_page": sum(q in qrels and q not in answerable for q in queries),
        }
        if not query_ids:
            raise ValueError(
                f"{Path(folder) / 'qrels.tsv'}: no query has a relevant page (a score > 0), so there is nothing to "
                f"score (queries judged with scores <= 0 only: {skipped['queries_without_relevant_page']}, without "
                f"a qrels line: {skipped['queries_without_qrels']}); give each query's relevant pages a positive score"
            )
        evalset = cls(
            folder=Path(folder),
            corpus=corpus,
            corpus_ids=[str(i) for i in corpus["id"].to_pylist()],
            query_ids=query_ids,
            query_texts=[queries[q] for q in query_ids],
            qrels={q: qrels[q] for q in query_ids},
            skipped=skipped,
        )
        print(f"{folder}: {evalset}", file=sys.stderr)  # the one report of the set, with any queries not scored
        return evalset

    def documents(
        self, page_input: str, ocr_cache: Path | None = None, ocr_workers: int | None = None, lazy: bool = False
    ) -> list:
        """Every corpus page as the models read it (read_pages), in corpus_ids order; lazy=True: screenshots are
        decoded when read (`Screenshots`), for the encoders that take them a chunk at a time."""
        return read_pages(self.corpus, page_input, corpus_path(self.folder), ocr_cache, ocr_workers, lazy=lazy)

    def relevant(self) -> dict[str, set[str]]:
        """{query id: the ids of its relevant pages (score > 0)}, as sentence-transformers' evaluators take it."""
        return {q: {d for d, score in docs.items() if score > 0} for q, docs in self.qrels.items()}

    def evaluator_inputs(self, page_input: str) -> dict:
        """The held-out set as sentence-transformers' retrieval evaluators (dense and multi-vector) take it:
        queries {id: text} (those with a relevant page), corpus {id: what the model reads of the page} and
        relevant_docs {query id: {page id}}."""
        relevant = self.relevant()
        queries = dict(zip(self.query_ids, self.query_texts))
        return {
            "queries": {q: queries[q] for q in relevant},
            "corpus": dict(zip(self.corpus_ids, self.documents(page_input))),
            "relevant_docs": relevant,
        }

    def __str__(self) -> str:
        reasons = {
            "queries_without_qrels": "without a qrels line",
            "queries_without_relevant_page": "without a relevant page",
        }
        skipped = ", ".join(f"{n} {reasons.get(r, r)}" for r, n in self.skipped.items() if n)
        not_scored = f" (queries not scored: {skipped})" if skipped else ""
        return f"{len(self.query_ids)} queries, {len(self.corpus_ids)} pages{not_scored}"
