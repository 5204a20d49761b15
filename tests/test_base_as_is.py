"""The base embedder as a user would run it out of the box (its own token limit), scored beside the rows at
evaluate.max_seq_length, and a finetuned embedder that loses to it flagged."""

from __future__ import annotations

import json

import numpy as np
import yaml

from tests.support.evalsets import beir_set
from tests.support.repo import tiny_params
from vdr.evaluation.report import as_is_sentence, results_table
from vdr.evaluation.significance import paired_comparisons

ROW = {"ndcg@10": 0.5, "mrr@10": 0.4, "recall@10": 0.8}


def test_a_finetuned_embedder_below_the_base_as_it_is_is_flagged():
    as_is = {**ROW, "ndcg@10": 0.6, "max_seq_length": 256}
    sentence = as_is_sentence(as_is, {**ROW, "ndcg@10": 0.55})
    assert sentence.startswith("The base embedder as it is reads 256 tokens of each page")
    assert "**Flag: the finetuned embedder (0.5500) scores below the base embedder as it is (0.6000)**" in sentence
    assert "Flag" not in as_is_sentence(as_is, {**ROW, "ndcg@10": 0.65})
    table = results_table({"base": ROW, "base_as_is": as_is, "finetuned": {**ROW, "ndcg@10": 0.55}})
    assert "| base embedder as it is (its own token limit) | 0.6000 |" in table and "**Flag" in table


def test_the_finetuned_embedder_is_compared_with_both_base_rows():
    qrels = {"q1": {"p1": 1}, "q2": {"p2": 1}}
    runs = {
        "base": {"q1": {"p1": 1.0, "p2": 0.5}, "q2": {"p1": 1.0, "p2": 0.5}},
        "base_as_is": {"q1": {"p1": 1.0, "p2": 0.5}, "q2": {"p2": 1.0, "p1": 0.5}},
        "finetuned": {"q1": {"p1": 1.0, "p2": 0.5}, "q2": {"p2": 1.0, "p1": 0.5}},
    }
    comparisons = paired_comparisons(runs, qrels)
    assert set(comparisons) == {"finetuned vs base", "finetuned vs base_as_is"}
    assert comparisons["finetuned vs base_as_is"]["difference"] == 0.0


def test_embed_base_encodes_again_at_the_models_own_limit_when_evaluate_cuts_shorter(tmp_path):
    from stages.embed_base import Paths, main

    texts = ["the first page " * 40, "a second, shorter page", "and a third page about trees " * 20]
    dataset = beir_set(
        tmp_path / "set",
        corpus={"id": ["p1", "p2", "p3"], "text": texts},
        queries={"id": ["q1", "q2"], "text": ["first page", "trees"]},
        qrels={"q1": {"p1": 1}, "q2": {"p3": 1}},
    )
    for length, asked, as_is in ((32, True, True), (None, True, False), (32, False, False)):
        params = tiny_params({"evaluate": {"max_seq_length": length, "base_as_is": asked}})
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        output = tmp_path / f"embeddings-{length}-{asked}"
        main(Paths(params=tmp_path / "params.yaml", dataset=dataset, output=output))
        assert json.loads((output / "info.json").read_text())["settings"]["max_seq_length"] == length
        assert (output / "as_is").is_dir() is as_is
    cut = np.load(tmp_path / "embeddings-32-True" / "corpus.npy")
    own = np.load(tmp_path / "embeddings-32-True" / "as_is" / "corpus.npy")
    assert (
        json.loads((tmp_path / "embeddings-32-True" / "as_is" / "info.json").read_text())["settings"]["max_seq_length"]
        == 256
    )  # all-MiniLM-L6-v2's own limit
    assert not np.allclose(cut[0], own[0]) and np.allclose(cut[1], own[1], atol=1e-5)  # only a long page differs
    assert np.allclose(own, np.load(tmp_path / "embeddings-None-True" / "corpus.npy"), atol=1e-5)
