"""Embeddings written by one stage and read by another, so that a (model, corpus) pair is encoded once.

A folder holds queries.npy and corpus.npy (full size, unit length, one row per id, as the model
returned them) and info.json: the query and corpus ids in row order and the settings they were
encoded with. Reading checks both against what the reader expects, so stale embeddings never score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

AS_IS = "as_is"  # the subfolder of the base model's embeddings at its own token limit (embed_base)


def encoding_settings(params, max_seq_length: int | None = None) -> dict:
    """Everything in params.yaml that changes the base embedder's embeddings of the held-out set; `max_seq_length`:
    the token limit they were encoded at, when it is not evaluate.max_seq_length (the model's own)."""
    models = params.models
    return {
        "embedder": models.embedder,
        "page_input": models.page_input,
        "model_kwargs": models.model_kwargs.model_dump(exclude_none=True),
        "processor_kwargs": models.processor_kwargs.model_dump(exclude_none=True),
        "max_seq_length": max_seq_length or params.evaluate.max_seq_length,
        "batch_size": params.evaluate.batch_size,
        "bf16": params.encode.bf16,
    }


def write_embeddings(
    folder: Path,
    query_embeddings: np.ndarray,
    corpus_embeddings: np.ndarray,
    query_ids: list[str],
    corpus_ids: list[str],
    settings: dict,
) -> None:
    """The embeddings' files in an existing folder (a temporary one, renamed by the caller). Corpus embeddings
    already written there as corpus.npy (encoded straight into it, vdr/retrieval/encode.py) are kept as they are."""
    info = {"settings": settings, "query_ids": query_ids, "corpus_ids": corpus_ids}
    np.save(folder / "queries.npy", query_embeddings)
    corpus_path = folder / "corpus.npy"
    filename = getattr(corpus_embeddings, "filename", None)  # an np.memmap's file
    if filename is None or not corpus_path.exists() or not Path(filename).samefile(corpus_path):
        np.save(corpus_path, corpus_embeddings)
    (folder / "info.json").write_text(json.dumps(info, indent=2) + "\n")


def load_embeddings(
    folder: Path, query_ids: list[str], corpus_ids: list[str], settings: dict, stage: str
) -> tuple[np.ndarray, np.ndarray]:
    """(query embeddings, corpus embeddings) in the order of `query_ids` and `corpus_ids`; the corpus embeddings
    memory-mapped (read-only), so that a large corpus is read block by block, never loaded whole."""
    info_path = Path(folder) / "info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{folder} holds no embeddings (no info.json); run `dvc repro {stage}` first")
    info = json.loads(info_path.read_text())
    if info["settings"] != json.loads(json.dumps(settings)):
        raise ValueError(
            f"{folder} was encoded with {info['settings']}, "
            f"but params.yaml now gives {settings}; run `dvc repro {stage}`"
        )
    if info["query_ids"] != query_ids or info["corpus_ids"] != corpus_ids:
        raise ValueError(
            f"{folder}: its query or corpus ids differ from the evaluation set's (a changed dataset?); "
            f"run `dvc repro {stage}`"
        )
    queries, corpus = np.load(Path(folder) / "queries.npy"), np.load(Path(folder) / "corpus.npy", mmap_mode="r")
    if queries.shape[0] != len(query_ids) or corpus.shape[0] != len(corpus_ids):
        raise ValueError(
            f"{folder}: {queries.shape[0]} query and {corpus.shape[0]} corpus rows "
            f"for {len(query_ids)} and {len(corpus_ids)} ids; run `dvc repro {stage}`"
        )
    return queries, corpus
