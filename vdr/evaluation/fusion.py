"""Choosing the fusion weight on the validation split, never on the test set (evaluate.fusion_weight: auto).

    choice = choose_fusion_weight(validation, "finetuned", cross_encoder, top_k, batch_size, bf16)
    choice.reranker_weight   # the reranker's best weight above 0 on validation: its fused row on the test set
    choice.weight            # the system chosen: 0 (the embedder alone) unless fusing beat it on validation

`validation` is an Evaluation (vdr/evaluation/driver.py) of the validation split (vdr/data/validation.py) holding the
retrieval `over`. The reranker scores that retrieval's top_k pages once; each weight of WEIGHTS fuses those scores
with the retrieval's (vdr/evaluation/rerank.py fuse) and is scored by NDCG@10 (ties: the lower weight). The
reranker's best weight above 0 is its weight on the test set; the system uses it only when its gain over the
embedder alone is beyond the validation split's noise (paired bootstrap 95% interval above zero,
vdr/evaluation/significance.py): a reranker costs time at every query, and a gain within the noise of a few hundred
validation queries flips with the arithmetic or the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.data.evalset import EvalSet
from vdr.evaluation.driver import Evaluation
from vdr.evaluation.rerank import fuse, rerank, reranked
from vdr.evaluation.significance import comparison, per_query_ndcg

WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))  # 0: the embedder's order ... 1: the reranker's alone


@dataclass(frozen=True)
class FusionChoice:
    weight: float  # the system: 0.0 the embedder alone; above 0 the reranker fused at it (a gain beyond noise)
    reranker_weight: float  # the reranker's best weight above 0, for its row on the test set
    ndcg_by_weight: dict[str, float]  # validation NDCG@10 of every weight of WEIGHTS ("0.0" .. "1.0")
    queries: int  # validation queries
    pages: int  # validation pages
    gain: dict  # the reranker at reranker_weight against the embedder alone, on validation (significance.comparison)

    def as_metrics(self) -> dict:
        return {
            "fusion_weight": self.weight,
            "reranker_weight": self.reranker_weight,
            "system": "finetuned" if self.weight == 0 else "finetuned+reranker",
            "chosen_on": "validation",
            "validation_queries": self.queries,
            "validation_pages": self.pages,
            "validation_gain": {key: round(value, 4) for key, value in self.gain.items() if key != "beyond_noise"}
            | {"beyond_noise": self.gain["beyond_noise"]},
            "validation_ndcg@10_by_weight": self.ndcg_by_weight,
        }


def choose_fusion_weight(validation, over: str, cross_encoder, top_k: int, batch_size: int, bf16: bool = False):
    """The FusionChoice of the reranker over the validation retrieval `over` (see the module's docstring)."""
    evalset = validation.evalset
    indices, scores = validation.tops[over]
    top_k = min(top_k, indices.shape[1])  # a validation split smaller than the test set's top_k
    rerank_scores = rerank(
        cross_encoder, evalset.query_texts, validation.documents, indices[:, :top_k], batch_size, bf16
    )
    per_query = {}
    for weight in WEIGHTS:
        ordering = fuse(rerank_scores, scores[:, :top_k], weight)
        run = reranked(evalset.query_ids, evalset.corpus_ids, indices, scores, ordering)
        per_query[weight] = per_query_ndcg(run, evalset.qrels)
    ndcg = {weight: sum(values.values()) / len(values) for weight, values in per_query.items()}
    best = max(WEIGHTS[1:], key=lambda weight: (ndcg[weight], -weight))  # ties: the lower weight
    gain = comparison(per_query[0.0], per_query[best])
    used = best if gain["difference"] > 0 and gain["beyond_noise"] else 0.0
    by_weight = {str(weight): round(value, 4) for weight, value in ndcg.items()}
    return FusionChoice(used, best, by_weight, len(evalset.query_ids), len(evalset.corpus_ids), gain)


def validation_evaluation(
    folder: Path, page_input: str, ocr_cache: Path | None, ocr_workers: int | None
) -> Evaluation:
    """The validation split the generate stage wrote (vdr/data/validation.py), its pages read as the models read them,
    ready for a retrieval to choose on; or a ValueError saying why there is none and what to set."""
    if not (folder / "qrels.tsv").exists():
        raise ValueError(
            f"{folder}: no validation split to choose evaluate.fusion_weight on (generate.validation_share is 0, or "
            "the training data has fewer than 2 documents); set generate.validation_share (e.g. 0.2), or set "
            "evaluate.fusion_weight to a number from 0 to 1"
        )
    split = EvalSet.load(folder)
    return Evaluation(split, split.documents(page_input, ocr_cache, ocr_workers, lazy=True))
