from pathlib import Path

import pytest

from tests.conftest import REPO
from vdr.models import load_embedder, load_reranker, resolve_model
from vdr.params import load_params


def test_wheel_model_resolves_to_a_folder():
    path = Path(resolve_model(load_params(REPO / "params.yaml").models.embedder))
    assert (path / "modules.json").exists() and (path / "model.safetensors").exists()


def test_missing_package_names_the_key():
    with pytest.raises(ValueError, match="models.embedder: 'pkg:not_a_package/model'"):
        resolve_model("pkg:not_a_package/model", "models.embedder")
    with pytest.raises(ValueError, match="has no folder 'nowhere'"):
        resolve_model("pkg:vdr/nowhere")


def test_embedder_and_reranker_load_offline():
    name = load_params(REPO / "params.yaml").models.embedder
    embedder = load_embedder(name, max_seq_length=32)
    assert embedder.max_seq_length == 32 and embedder.get_embedding_dimension() == 384
    reranker = load_reranker(name, max_length=64)
    scores = reranker.predict([("sum of values", "Add up the numbers."), ("sum of values", "Open a file.")])
    assert len(scores) == 2
