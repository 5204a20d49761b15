"""A library error names its field as it was given (vdr/errors.py); the caller says where that field lives: a
params.yaml section, a command line's options, a model's own name."""

import pickle

import pytest

from vdr.errors import FieldError, fields_as, fields_under, under
from vdr.models.sources import HubError


def test_a_field_error_reads_field_colon_message():
    error = FieldError("top_k", "50 pages to rerank; lower it")
    assert isinstance(error, ValueError)
    assert (error.field, error.message) == ("top_k", "50 pages to rerank; lower it")
    assert str(error) == "top_k: 50 pages to rerank; lower it"
    assert str(FieldError("", "the model folder does not exist")) == "the model folder does not exist"


def test_under_joins_a_prefix_and_a_field():
    assert under("evaluate", "top_k") == "evaluate.top_k"
    assert under("train_embedder", "lora.target_modules") == "train_embedder.lora.target_modules"
    assert under("models.embedder", "") == "models.embedder"
    assert under("embedder", "(the base of the adapter a/b)") == "embedder (the base of the adapter a/b)"


def test_fields_under_prefixes_every_field_error_of_its_block():
    with pytest.raises(FieldError, match=r"^evaluate\.top_k: too many$") as raised:
        with fields_under("evaluate"):
            raise FieldError("top_k", "too many")
    assert raised.value.field == "evaluate.top_k" and raised.value.message == "too many"
    with pytest.raises(FieldError, match=r"^train_embedder\.lora\.target_modules: none$"):
        with fields_under("train_embedder"), fields_under("lora"):  # the inner block names first
            raise FieldError("target_modules", "none")


def test_other_errors_pass_through_unchanged():
    with pytest.raises(ValueError, match=r"^plain$"):
        with fields_under("evaluate"), fields_as({"top_k": "--top-k"}):
            raise ValueError("plain")


def test_fields_as_renames_the_first_name_and_keeps_the_rest():
    flags = {"top_k": "--top-k", "embedder": "--model"}
    for field, named in [
        ("top_k", "--top-k"),
        ("embedder", "--model"),
        ("embedder (the base of the adapter a/b)", "--model (the base of the adapter a/b)"),
        ("embedder.target_modules", "--model.target_modules"),
        ("devices", "devices"),  # not in the mapping: as it is
    ]:
        with pytest.raises(FieldError) as raised:
            with fields_as(flags):
                raise FieldError(field, "bad")
        assert str(raised.value) == f"{named}: bad"


def test_the_renamed_error_keeps_its_type_traceback_and_pickles():
    def fail():
        raise HubError("", "offline")

    with pytest.raises(OSError) as raised:
        with fields_under("models.reranker"):
            fail()
    error = raised.value
    assert isinstance(error, FieldError) and str(error) == "models.reranker: offline"
    assert any(entry.name == "fail" for entry in raised.traceback)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is HubError and str(again) == "models.reranker: offline"


def test_a_model_loader_names_its_field_and_an_adapters_base(tmp_path):
    from vdr.models.loading import load_embedder
    from vdr.models.reranker import load_reranker

    missing = tmp_path / "nowhere"
    with pytest.raises(FieldError, match=r"^models\.embedder: the model folder .* does not exist"):
        with fields_under("models"):
            load_embedder(str(missing))
    with pytest.raises(FieldError, match=r"^--reranker: the model folder .* does not exist"):
        with fields_as({"reranker": "--reranker"}):
            load_reranker(str(missing))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(f'{{"base_model_name_or_path": "{missing}"}}')
    with pytest.raises(FieldError, match=rf"^--model \(the base of the adapter {adapter}\): the model folder "):
        with fields_as({"embedder": "--model"}):
            load_embedder(str(adapter))
