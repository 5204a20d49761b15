"""Retrieval metrics computed with pytrec_eval (trec_eval's own code), and TREC run files.

pytrec_eval ranks a query's documents by score, breaking ties by descending document id, and uses
graded relevance gains for NDCG. Queries with no retrieved document count as zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytrec_eval

from vdr.io.files import atomic_path, write_json

RUN_DEPTH = 100  # documents kept per query in a run; recall@100 and map@100 need them
CUTOFFS = (1, 3, 5, 10, 100)  # the cutoffs BEIR and MTEB report (vdr-eval); the metrics files keep ir_metrics' set


def to_run(
    query_ids: list[str], document_ids: list[str], indices: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    return {
        query_id: {document_ids[i]: float(s) for i, s in zip(row_indices, row_scores)}
        for query_id, row_indices, row_scores in zip(query_ids, indices, scores)
    }


def top(run: dict[str, dict[str, float]], k: int) -> dict[str, dict[str, float]]:
    """The k best documents of each query, ranked as trec_eval ranks them."""
    return {query_id: dict(ranked(documents)[:k]) for query_id, documents in run.items()}


def ranked(documents: dict[str, float]) -> list[tuple[str, float]]:
    """A query's (document id, score) pairs as trec_eval ranks them: by score, descending, ties broken by document
    id, descending. Two sorts, the second stable, so ties keep the first one's order."""
    by_id = sorted(documents.items(), key=lambda item: item[0], reverse=True)
    return sorted(by_id, key=lambda item: item[1], reverse=True)


def ir_metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean ndcg@10, mrr@10, recall@{1,10,100} and map@100 over every query in `qrels`."""
    qrels = {q: docs for q, docs in qrels.items() if any(score > 0 for score in docs.values())}
    measures = {"ndcg_cut.10", "recall.1,10,100"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    at10 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top(run, 10))
    at100 = pytrec_eval.RelevanceEvaluator(qrels, {"map"}).evaluate(top(run, 100))

    def mean(results: dict, measure: str) -> float:
        return sum(results.get(q, {}).get(measure, 0.0) for q in qrels) / max(len(qrels), 1)

    return {
        "ndcg@10": mean(per_query, "ndcg_cut_10"),
        "mrr@10": mean(at10, "recip_rank"),
        "recall@1": mean(per_query, "recall_1"),
        "recall@10": mean(per_query, "recall_10"),
        "recall@100": mean(per_query, "recall_100"),
        "map@100": mean(at100, "map"),
    }


def cutoff_metrics(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], cutoffs: tuple[int, ...] = CUTOFFS
) -> dict[str, float]:
    """Mean ndcg, mrr, recall, precision and map at each cutoff (`ndcg@1`, ..., `map@100`), as BEIR and MTEB report
    them (MTEB's `ndcg_at_10` is `ndcg@10` here), over every query in `qrels` as ir_metrics averages them.

    The same trec_eval measures as ir_metrics at its cutoffs (ndcg_cut, recall; mrr: recip_rank over the top k;
    map: map_cut, which equals map over the top k), so the values they share are equal; precision is trec_eval's
    P (relevant pages among the top k, divided by k). Only `vdr-eval` writes these: the metrics files of the stages
    keep ir_metrics' fixed set, so that `dvc metrics show` stays as it is."""
    qrels = {q: docs for q, docs in qrels.items() if any(score > 0 for score in docs.values())}
    at = ",".join(str(k) for k in cutoffs)
    measures = {f"ndcg_cut.{at}", f"recall.{at}", f"P.{at}", f"map_cut.{at}"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    reciprocal = {k: pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top(run, k)) for k in cutoffs}

    def mean(results: dict, measure: str) -> float:
        return sum(results.get(q, {}).get(measure, 0.0) for q in qrels) / max(len(qrels), 1)

    measure_of = {"ndcg": "ndcg_cut_", "mrr": "recip_rank", "recall": "recall_", "precision": "P_", "map": "map_cut_"}
    return {
        f"{name}@{k}": mean(reciprocal[k], measure) if name == "mrr" else mean(per_query, f"{measure}{k}")
        for name, measure in measure_of.items()
        for k in cutoffs
    }


def write_trec_run(path: Path, run: dict[str, dict[str, float]], tag: str) -> None:
    """Standard TREC run format: qid Q0 docid rank score tag. Its columns are separated by whitespace, so an id
    (or tag) that is empty or holds whitespace is a ValueError naming it and the file, never a garbled line."""
    names = [("tag", tag)]
    for query_id, documents in run.items():
        names += [("query id", query_id)] + [("doc id", doc_id) for doc_id in documents]
    for what, value in names:
        if not str(value) or any(character.isspace() for character in str(value)):
            raise ValueError(
                f"{path}: {what} {value!r} is empty or contains whitespace, which a TREC run file cannot hold "
                "(whitespace separates its columns); rename it in the dataset, e.g. with '_' for each space"
            )
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        for query_id, documents in run.items():
            for rank, (doc_id, score) in enumerate(ranked(documents), start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def held_out_set(evalset) -> dict:
    """The held-out set's counts, as every metrics file carries them: the queries scored (each in every mean), the
    pages, and the queries not scored, by reason (vdr/data/evalset.py `skipped`)."""
    return {
        "queries": len(evalset.query_ids),
        "pages": len(evalset.corpus_ids),
        "queries_not_scored": evalset.skipped,
    }


def write_results(
    metrics_path: Path, runs_path: Path, metrics: dict, runs: dict, evalset, extra: dict | None = None
) -> None:
    """A stage's results: `metrics` with the held-out set's counts (every query not scored is counted) and `extra`
    (the comparisons between rows, the arithmetic that produced them) as JSON, and one TREC run file per row in the
    folder `runs_path`, each written atomically."""
    write_json(metrics_path, {**metrics, "held_out_set": held_out_set(evalset), **(extra or {})})
    with atomic_path(runs_path) as temporary:
        temporary.mkdir()
        for name, run in runs.items():
            write_trec_run(temporary / f"{name}.trec", run, name)
