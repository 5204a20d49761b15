"""The validation split (vdr/data/validation.py, carved by the generate stage) and the fusion weight chosen there
(vdr/evaluation/fusion.py, evaluate.fusion_weight: auto): nothing is tuned on the held-out test set."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.support.images import png
from tests.support.repo import tiny_params
from vdr.config.params import Params
from vdr.data.evalset import EvalSet
from vdr.data.validation import validation_documents, write_validation_set
from vdr.evaluation.fusion import WEIGHTS, choose_fusion_weight, validation_evaluation
from vdr.evaluation.report import system_sentence


def test_a_seeded_share_of_the_documents_never_all_of_them():
    documents = [f"doc-{n}" for n in range(50)] * 2  # a document with several pages counts once
    held = validation_documents(documents, 0.2, seed=42)
    assert len(held) == 10 and held == validation_documents(documents, 0.2, seed=42)
    assert held != validation_documents(documents, 0.2, seed=1)
    assert validation_documents(documents, 0.0, seed=42) == set()
    assert len(validation_documents(["a", "b", "c"], 0.01, seed=42)) == 1  # at least one
    assert len(validation_documents(["a", "b"], 0.5, seed=42)) == 1  # never every document
    assert validation_documents(["only"], 0.5, seed=42) == set()  # one document: nothing left to train on


def page_row(page: str, query: str) -> dict:
    return {
        "id": page,
        "image": png((1, 2, 3), (8, 8)),
        "text": f"text of {page}",
        "width": 8,
        "height": 8,
        "query": query,
    }


def test_the_split_is_a_retrieval_set_in_the_held_out_layout(tmp_path):
    rows = [page_row("p1", "first question"), page_row("p1", "second question"), page_row("p2", "third question")]
    sizes = write_validation_set(tmp_path / "validation", rows, shard_size=2)
    assert sizes == {"validation_queries": 3, "validation_pages": 2}
    split = EvalSet.load(tmp_path / "validation")
    assert split.corpus_ids == ["p1", "p2"] and split.query_texts == [
        "first question",
        "second question",
        "third question",
    ]
    assert split.relevant() == {"v-p1-0": {"p1"}, "v-p1-1": {"p1"}, "v-p2-2": {"p2"}}
    write_validation_set(tmp_path / "none", [], shard_size=2)
    with pytest.raises(
        ValueError,
        match=r"none: no validation split to choose evaluate.fusion_weight on .* set generate.validation_share",
    ):
        validation_evaluation(tmp_path / "none", "text", None, None)


def rendered_with_queries(folder, pages: int):
    """data/rendered as a source that brings its queries leaves it (docstrings, the Hub dataset)."""
    (folder / "train").mkdir(parents=True)
    rows = [page_row(f"page-{n}", f"question {n}") for n in range(pages)]
    pq.write_table(pa.Table.from_pylist(rows), folder / "train" / "part-00000.parquet")
    (folder / "eval" / "corpus").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([page_row("eval-0", "")]), folder / "eval" / "corpus" / "part-00000.parquet")
    (folder / "eval" / "qrels.tsv").write_text("q\teval-0\t1\n")
    return folder


@pytest.mark.parametrize("share", [0.2, 0.0])
def test_generate_moves_the_validation_pages_out_of_training(tmp_path, share):
    from stages.generate import Paths, main

    params = tiny_params({"generate": {"backend": "none", "validation_share": share}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    paths = Paths(
        params=tmp_path / "params.yaml",
        rendered=rendered_with_queries(tmp_path / "rendered", pages=20),
        output=tmp_path / "pages",
        metrics=tmp_path / "generate.json",
    )
    main(paths)
    train = pq.read_table(paths.output / "train").column("id").to_pylist()
    metrics = json.loads(paths.metrics.read_text())
    assert (paths.output / "eval" / "qrels.tsv").read_text() == "q\teval-0\t1\n"  # the test set untouched
    if share == 0:
        assert len(train) == 20 and metrics["validation_queries"] == 0
        assert (paths.output / "validation" / "README.md").exists()
        return
    validation = EvalSet.load(paths.output / "validation")
    assert len(validation.corpus_ids) == 4 and not set(validation.corpus_ids) & set(train)
    assert sorted(train + validation.corpus_ids) == sorted(f"page-{n}" for n in range(20))
    assert metrics["train_pairs"] == 16 and metrics["validation_queries"] == 4


class ScriptedReranker:
    """A cross-encoder whose score for (query, page) is scores[(query, page)]."""

    def __init__(self, scores: dict):
        self.scores = scores

    def predict(self, pairs, **kwargs):
        return np.array([self.scores[pair] for pair in pairs])


def validation_of(queries: int):
    """An Evaluation-shaped validation split: query i's relevant page is page i, which the embedder ranks second of
    three (its retrieval top: the pages i+1, i, i+2)."""
    pages = [f"p{n}" for n in range(queries + 2)]
    evalset = SimpleNamespace(
        query_ids=[f"q{n}" for n in range(queries)],
        query_texts=[f"query {n}" for n in range(queries)],
        corpus_ids=pages,
        qrels={f"q{n}": {f"p{n}": 1} for n in range(queries)},
    )
    indices = np.array([[n + 1, n, n + 2] for n in range(queries)])
    scores = np.tile([0.9, 0.8, 0.1], (queries, 1))
    return SimpleNamespace(evalset=evalset, documents=pages, tops={"finetuned": (indices, scores)})


def test_a_reranker_that_finds_the_page_is_chosen_and_one_that_hurts_is_not():
    validation = validation_of(queries=6)
    helpful = ScriptedReranker(
        {(f"query {n}", page): (5.0 if page == f"p{n}" else 0.0) for n in range(6) for page in validation.documents}
    )
    choice = choose_fusion_weight(validation, "finetuned", helpful, top_k=3, batch_size=4)
    assert choice.weight > 0 and choice.reranker_weight == choice.weight
    assert choice.ndcg_by_weight["0.0"] < choice.ndcg_by_weight[str(choice.weight)] == 1.0
    assert list(choice.ndcg_by_weight) == [str(w) for w in WEIGHTS]
    assert "the reranker fused at weight" in system_sentence(choice.as_metrics())

    harmful = ScriptedReranker(
        {(f"query {n}", page): (-5.0 if page == f"p{n}" else 5.0) for n in range(6) for page in validation.documents}
    )
    choice = choose_fusion_weight(validation, "finetuned", harmful, top_k=3, batch_size=4)
    metrics = choice.as_metrics()
    assert choice.weight == 0.0 and choice.reranker_weight > 0 and metrics["system"] == "finetuned"
    assert metrics["validation_queries"] == 6 and metrics["chosen_on"] == "validation"
    sentence = system_sentence(metrics)
    assert sentence.startswith("System chosen on the validation split (6 queries, 8 pages")
    assert "the finetuned embedder alone" in sentence and "not used" in sentence


def test_a_preset_weight_says_so():
    assert system_sentence({"fusion_weight": 0.5, "chosen_on": "preset"}) == (
        "The reranker is fused at the preset weight 0.5 (evaluate.fusion_weight)."
    )


def test_auto_without_a_split_is_refused_naming_both_keys():
    params = tiny_params({"generate": {"validation_share": 0.0}, "evaluate": {"fusion_weight": "auto"}})
    with pytest.raises(ValueError, match=r"evaluate.fusion_weight: auto .* generate.validation_share is 0"):
        Params.model_validate(params)
    for bad in (1.5, "best", True):
        with pytest.raises(ValueError, match="must be auto .* or a number from 0 to 1"):
            Params.model_validate(tiny_params({"evaluate": {"fusion_weight": bad}}))


def test_a_gain_within_the_validation_noise_does_not_buy_the_reranker():
    """Two queries helped, one hurt, seven left alone: a positive mean, but its interval holds zero."""
    validation = validation_of(queries=10)
    scores = {}
    for n in range(10):
        for page in validation.documents:
            relevant = page == f"p{n}"
            if n < 2:
                scores[(f"query {n}", page)] = 5.0 if relevant else 0.0  # found: rank 2 -> 1
            elif n == 2:
                scores[(f"query {n}", page)] = -5.0 if relevant else 5.0  # lost: rank 2 -> 3
            else:
                scores[(f"query {n}", page)] = {f"p{n + 1}": 3.0, f"p{n}": 2.0}.get(page, 1.0)  # the embedder's order
    choice = choose_fusion_weight(validation, "finetuned", ScriptedReranker(scores), top_k=3, batch_size=4)
    assert choice.ndcg_by_weight[str(choice.reranker_weight)] > choice.ndcg_by_weight["0.0"]
    assert choice.gain["difference"] > 0 and not choice.gain["beyond_noise"] and choice.weight == 0.0
    assert "not a gain beyond the noise" in system_sentence(choice.as_metrics())
