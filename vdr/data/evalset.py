"""The held-out set as every stage, the CLI and the tests load it.

`EvalSet.load(folder)` reads a BEIR-layout set once (vdr/io/beir.py load_beir: ids, queries, qrels
checked) and keeps the queries that have at least one relevant page (a qrels score > 0), in the order of
queries.parquet; the others are counted in `skipped` and reported, never scored as zero or dropped unsaid.
Its pages are read as the model reads them (vdr/data/reading.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from vdr.data.reading import read_pages
from vdr.io.beir import corpus_path, load_beir


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
