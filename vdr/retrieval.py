"""Encode once (unit-length embeddings), truncate Matryoshka dimensions; vdr/search.py searches them."""

from __future__ import annotations

import numpy as np


def encode_queries(model, texts: list[str], batch_size: int) -> np.ndarray:
    return model.encode_query(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True
    )


def encode_documents(model, documents: list, batch_size: int) -> np.ndarray:
    return model.encode_document(
        documents, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True
    )


def truncate(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Keep the first `dim` Matryoshka dimensions and renormalise to unit length."""
    if dim > embeddings.shape[1]:
        raise ValueError(f"dimension {dim} is larger than the model's embedding size {embeddings.shape[1]}")
    head = embeddings[:, :dim].astype(np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return head / np.maximum(norms, 1e-12)
