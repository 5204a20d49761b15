"""The mining rule for hard negatives, on top of exact search (vdr/retrieval/search.py)."""

from __future__ import annotations

import numpy as np

from vdr.retrieval.search import DEFAULT_MAX_MEMORY_MB, search


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
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
) -> list[list[int] | None]:
    """Hard negatives by page index, for any page modality: for query i, the pages at ranks range_min..range_max
    other than its positive, skipping any that score above (1 - relative_margin) x the positive's score (a likely
    duplicate or unlabelled positive); the best-ranked of them (sampling_strategy "top") or a seeded random draw
    ("random"). None where fewer than num_negatives remain. `page_embeddings` may be an np.memmap: it is searched
    block by block within `max_memory_mb`, and only each positive's row is read besides."""
    indices, scores = search(query_embeddings, page_embeddings, range_max, max_memory_mb)
    generator = np.random.default_rng(seed)
    chosen = []
    for i, positive in enumerate(positives):
        ceiling = (1 - relative_margin) * float(query_embeddings[i] @ page_embeddings[positive])
        ranked = [
            int(j)
            for j, score in zip(indices[i, range_min:], scores[i, range_min:])
            if j != positive and score <= ceiling
        ]
        if len(ranked) < num_negatives:
            chosen.append(None)
        elif sampling_strategy == "random":
            chosen.append([ranked[j] for j in sorted(generator.choice(len(ranked), num_negatives, replace=False))])
        else:
            chosen.append(ranked[:num_negatives])
    return chosen
