"""The evaluation driver: retrieve with a retriever, score with pytrec_eval, rerank the top-k, write the results.

    evaluation = Evaluation(evalset, documents)
    evaluation.dense("finetuned", dense_retriever, dims)            # every Matryoshka dimension of one encoding pass
    evaluation.late("multivector_finetuned", multivector_retriever)  # plus what the token index costs
    evaluation.rerank("finetuned+reranker", cross_encoder, "finetuned", top_k, fusion_weight, batch_size)
    evaluation.write(metrics_path, runs_path)     # the rows and the held-out set's counts as JSON, TREC run files

Used by the evaluate and evaluate_multivector stages, `vdr-eval` and the benchmarks, so that a row means the same
everywhere: each retrieval keeps the top RUN_DEPTH pages per query, scored with vdr/evaluation/metrics.py, and the
rerankers reorder a retrieval's top-k (vdr/evaluation/rerank.py). Retrievers: vdr/retrieval/retriever.py.

Each kind keeps its own order of work. A dense retriever encodes the queries, then the pages, and searches once its
pool has stopped. A multi-vector one indexes the pages first, then times the query path (encoding the queries and
searching) inside its encoding block, as MaxSim runs under the same autocast as the encoding.
"""

from __future__ import annotations

import time
from pathlib import Path

from vdr.errors import FieldError
from vdr.evaluation.metrics import RUN_DEPTH, held_out_set, ir_metrics, to_run, write_results
from vdr.evaluation.rerank import rerank_and_score
from vdr.retrieval.retriever import Retriever


class Evaluation:
    """The rows of one held-out set (`evalset`, its pages read as the models read them: `documents`), in the order
    they were added: `rows` (metrics), `runs` (TREC runs), `tops` ((indices, scores) of each retrieval)."""

    def __init__(self, evalset, documents: list):
        self.evalset = evalset
        self.documents = documents
        self.rows: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.dimension_runs: dict[str, dict[int, dict]] = {}  # {model: {dim: run}} of a dense retrieval
        self.tops: dict[str, tuple] = {}

    def score(self, top: tuple) -> dict:
        """pytrec_eval's metrics of a retrieval's (indices, scores)."""
        return ir_metrics(self.run(top), self.evalset.qrels)

    def run(self, top: tuple) -> dict:
        return to_run(self.evalset.query_ids, self.evalset.corpus_ids, *top)

    def add(self, name: str, row: dict, top: tuple) -> dict:
        """A retrieval's row, its top pages and its run."""
        self.rows[name], self.tops[name], self.runs[name] = row, top, self.run(top)
        return row

    def dense(self, name: str, retriever: Retriever, dims: list[int]) -> dict:
        """A dense retriever: the queries and the pages encoded once, at full size, then scored at full size and at
        each Matryoshka dimension of `dims`."""
        with retriever.encoding():
            queries = retriever.encode_queries(self.evalset.query_texts)
            pages = retriever.index(self.documents)
        return self.embeddings(name, retriever, queries, pages, dims)

    def embeddings(self, name: str, retriever: Retriever, queries, pages, dims: list[int]) -> dict:
        """Dense embeddings computed earlier (full size): each dimension, the full one too, truncated and
        renormalised, searched by `retriever` within its bound. The row: the full size's metrics, and under "dims"
        every dimension's; the run and top pages: the full size's. A dimension above the full size: FieldError
        naming `dims`."""
        full = queries.shape[1]
        too_large = [d for d in dims if d > full]
        if too_large:
            raise FieldError("dims", f"{too_large} exceed the model's embedding size {full}; lower them")
        by_dim, tops = {}, {}
        for dim in sorted({full, *dims}, reverse=True):
            tops[dim] = retriever.search(queries, pages, RUN_DEPTH, dim)
            by_dim[str(dim)] = self.score(tops[dim])
        self.dimension_runs[name] = {dim: self.run(top) for dim, top in tops.items()}
        return self.add(name, {**by_dim[str(full)], "dims": by_dim}, tops[full])

    def late(self, name: str, retriever: Retriever) -> dict:
        """A multi-vector retriever: every page encoded once into its token index, every query encoded and searched
        by MaxSim. The row adds what the index costs (bytes and tokens per page, token dims) and the ms per query of
        encoding the query and searching (the pages were encoded beforehand)."""
        with retriever.encoding():
            pages = retriever.index(self.documents)
            started = time.perf_counter()
            queries = retriever.encode_queries(self.evalset.query_texts)
            top = retriever.search(queries, pages, RUN_DEPTH)
            elapsed = time.perf_counter() - started
        row = {
            **self.score(top),
            "index_bytes_per_page": round(pages.nbytes / len(pages), 1),
            "tokens_per_page": round(pages.tokens_per_item, 1),
            "token_dims": int(pages.tokens.shape[1]),
            "ms_per_query": round(1000 * elapsed / max(len(self.evalset.query_ids), 1), 1),
        }
        return self.add(name, row, top)

    def rerank(
        self,
        name: str,
        cross_encoder,
        over: str,
        top_k: int,
        fusion_weight: float,
        batch_size: int,
        bf16: bool = False,
    ) -> dict[str, dict]:
        """The cross-encoder over the top_k pages of the retrieval `over`: the row `name`, fused with the retrieval
        score at fusion_weight, and below 1 also `name`_only, its order alone (vdr/evaluation/rerank.py). Returns
        those rows."""
        rows, runs = rerank_and_score(
            cross_encoder,
            self.evalset,
            self.documents,
            self.tops[over],
            top_k,
            fusion_weight,
            batch_size,
            name,
            bf16=bf16,
        )
        self.rows.update(rows)
        self.runs.update(runs)
        return rows

    def results(self) -> dict:
        """Every row and the held-out set's counts: what a metrics file holds."""
        return {**self.rows, "held_out_set": held_out_set(self.evalset)}

    def write(self, metrics_path: Path, runs_path: Path, extra: dict | None = None) -> None:
        """results() as JSON, with `extra` (comparisons, precision) beside the rows, and one TREC run file per row in
        the folder `runs_path` (vdr/evaluation/metrics.py)."""
        write_results(metrics_path, runs_path, self.rows, self.runs, self.evalset, extra)
