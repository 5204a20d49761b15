from pathlib import Path

import pytest

from tests.support.repo import REPO
from vdr.config.params import load_params
from vdr.errors import fields_under
from vdr.models.loading import load_embedder
from vdr.models.reranker import load_reranker
from vdr.models.sources import resolve_model


def test_wheel_model_resolves_to_a_folder():
    path = Path(resolve_model(load_params(REPO / "params.yaml").models.embedder))
    assert (path / "modules.json").exists() and (path / "model.safetensors").exists()


def test_missing_package_names_the_key():
    with pytest.raises(ValueError, match="models.embedder: 'pkg:not_a_package/model'"):
        with fields_under("models.embedder"):  # as the check stage names it
            resolve_model("pkg:not_a_package/model")
    with pytest.raises(ValueError, match="has no folder 'nowhere'"):
        resolve_model("pkg:vdr/nowhere")


def test_embedder_and_reranker_load_offline():
    name = load_params(REPO / "params.yaml").models.embedder
    embedder = load_embedder(name, max_seq_length=32)
    assert embedder.max_seq_length == 32 and embedder.get_embedding_dimension() == 384
    reranker = load_reranker(name, max_length=64)
    scores = reranker.predict([("sum of values", "Add up the numbers."), ("sum of values", "Open a file.")])
    assert len(scores) == 2


def test_a_token_limit_beyond_the_models_positions_stops_at_load():
    """MiniLM has 512 learned positions: a longer limit would fail on the first long page, deep into a stage."""
    from vdr.models.multivector import load_multivector

    name = load_params(REPO / "params.yaml").models.embedder
    assert load_embedder(name, max_seq_length=512).max_seq_length == 512
    with pytest.raises(ValueError, match="^embedder: max_seq_length 1024 exceeds the 512 token positions"):
        load_embedder(name, max_seq_length=1024)
    with pytest.raises(ValueError, match="models.reranker: max_length 600 exceeds the 512 token positions"):
        with fields_under("models"):  # as the stages name it
            load_reranker(name, max_length=600)
    with pytest.raises(ValueError, match="train_multivector.document_length: 2048 exceeds the 512 token positions"):
        with fields_under("train_multivector"):
            load_multivector(name, projection_dim=8, document_length=2048)


def test_a_reranker_keeps_its_first_layers_and_loads_back_as_saved(tmp_path):
    """train_reranker.num_layers: the first n layers of the same checkpoint, a config that says so, a saved
    reranker that loads with n layers and scores as it did before saving."""
    from vdr.models.reranker import keep_first_layers

    name = load_params(REPO / "params.yaml").models.reranker
    full = load_reranker(name, max_length=64)
    small = load_reranker(name, max_length=64)
    keep_first_layers(small, 3)
    layers = small[0].model.encoder.layer
    assert len(layers) == 3 and small[0].model.config.num_hidden_layers == 3
    for kept, original in zip(layers, full[0].model.encoder.layer):
        assert all((a == b).all() for a, b in zip(kept.parameters(), original.parameters()))
    pairs = [("how to invert a matrix", "numpy.linalg.inv computes the inverse"), ("sort a list", "sorted(x)")]
    before = small.predict(pairs)
    small.save(str(tmp_path / "reranker"))
    again = load_reranker(str(tmp_path / "reranker"), max_length=64)
    assert len(again[0].model.encoder.layer) == 3
    assert abs(again.predict(pairs) - before).max() < 1e-5
    with pytest.raises(ValueError, match="train_reranker.num_layers: 7 layers asked, the model has 3"):
        with fields_under("train_reranker"):
            keep_first_layers(again, 7)
