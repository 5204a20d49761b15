"""Encode once (unit-length embeddings), truncate Matryoshka dimensions; vdr/search.py searches them.

Embeddings must be finite: a NaN one (a diverged finetuning, a float16 overflow) stops the stage (vdr/finite.py)."""

from __future__ import annotations

import numpy as np

from vdr.finite import model_name, require_finite

NOT_FINITE_HINT = (
    "the embedder's weights are probably NaN: if it is the finetuned one (models/embedder), its training "
    "diverged, so retrain it with a lower train_embedder.learning_rate; with models.model_kwargs.dtype float16 "
    "it may have overflowed"
)


def encode_queries(model, texts: list[str], batch_size: int) -> np.ndarray:
    embeddings = model.encode_query(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True
    )
    return require_finite(embeddings, f"the query embeddings of {model_name(model)}", NOT_FINITE_HINT)


def encode_documents(model, documents: list, batch_size: int) -> np.ndarray:
    embeddings = model.encode_document(
        documents, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True
    )
    return require_finite(embeddings, f"the page embeddings of {model_name(model)}", NOT_FINITE_HINT)


def truncate(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Keep the first `dim` Matryoshka dimensions and renormalise to unit length."""
    if dim > embeddings.shape[1]:
        raise ValueError(f"dimension {dim} is larger than the model's embedding size {embeddings.shape[1]}")
    head = embeddings[:, :dim].astype(np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return head / np.maximum(norms, 1e-12)
