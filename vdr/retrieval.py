"""Encode once, truncate Matryoshka dimensions, search, and the mining rule for hard negatives."""

from __future__ import annotations

import numpy as np


def encode_queries(model, texts: list[str], batch_size: int) -> np.ndarray:
    return model.encode_query(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True)


def encode_documents(model, documents: list, batch_size: int) -> np.ndarray:
    return model.encode_document(documents, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True)


def truncate(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Keep the first `dim` Matryoshka dimensions and renormalise to unit length."""
    if dim > embeddings.shape[1]:
        raise ValueError(f"dimension {dim} is larger than the model's embedding size {embeddings.shape[1]}")
    head = embeddings[:, :dim].astype(np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return head / np.maximum(norms, 1e-12)


def search(query_embeddings: np.ndarray, document_embeddings: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k per query: (indices, scores), best first; ties go to the lower document index."""
    scores = query_embeddings @ document_embeddings.T
    top_k = min(top_k, scores.shape[1])
    # lexsort sorts by the last key first: score descending, then index ascending
    order = np.stack([np.lexsort((np.arange(row.size), -row))[:top_k] for row in scores])
    return order, np.take_along_axis(scores, order, axis=1)


def mine_negatives(
    query_embeddings: np.ndarray,
    page_embeddings: np.ndarray,
    positives: list[int],
    num_negatives: int,
    range_min: int,
    range_max: int,
    relative_margin: float,
    sampling_strategy: str = "top",
    seed: int = 0,
) -> list[list[int] | None]:
    """Hard negatives by page index, for any page modality: for query i, the pages at ranks range_min..range_max
    other than its positive, skipping any that score above (1 - relative_margin) x the positive's score (a likely
    duplicate or unlabelled positive); the best-ranked of them (sampling_strategy "top") or a seeded random draw
    ("random"). None where fewer than num_negatives remain."""
    indices, scores = search(query_embeddings, page_embeddings, range_max)
    generator = np.random.default_rng(seed)
    chosen = []
    for i, positive in enumerate(positives):
        ceiling = (1 - relative_margin) * float(query_embeddings[i] @ page_embeddings[positive])
        ranked = [int(j) for j, score in zip(indices[i, range_min:], scores[i, range_min:]) if j != positive and score <= ceiling]
        if len(ranked) < num_negatives:
            chosen.append(None)
        elif sampling_strategy == "random":
            chosen.append([ranked[j] for j in sorted(generator.choice(len(ranked), num_negatives, replace=False))])
        else:
            chosen.append(ranked[:num_negatives])
    return chosen
