"""Rules every data source shares: whitespace-insensitive leak checks and the seeded order that splits a corpus."""

from __future__ import annotations

import hashlib
import re


def normalise_whitespace(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def query_on_page(query: str, page_text: str) -> bool:
    """Whether the query can be read verbatim on the page (spacing ignored): such a query tests string matching,
    not retrieval, and is dropped."""
    return normalise_whitespace(query) in normalise_whitespace(page_text)


def stable_rank(key: str, seed: int) -> str:
    """A deterministic pseudo-random sort key, the same on every machine and Python version."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
