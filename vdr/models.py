"""Find and load the embedder and reranker that params.yaml names."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def resolve_model(name: str, key: str = "models") -> str:
    """`pkg:<package>/<folder>` -> the folder inside an installed wheel; anything else is a path or Hub id."""
    if not name.startswith("pkg:"):
        return name
    package, _, folder = name[len("pkg:") :].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"{key}: '{name}' names the Python package '{package}', which is not installed; "
            "install the project's lock file (pip install -r requirements.lock)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / folder
    if not path.is_dir():
        raise ValueError(f"{key}: '{name}': the package '{package}' has no folder '{folder}' ({path})")
    return str(path)


def load_embedder(name: str, max_seq_length: int | None = None, key: str = "models.embedder"):
    from sentence_transformers import SentenceTransformer

    path = resolve_model(name, key)
    if "/" not in name and not Path(path).exists():
        raise ValueError(f"{key}: '{name}' is neither a folder nor a Hub model id (owner/name)")
    model = SentenceTransformer(path)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def load_reranker(name: str, max_length: int | None = None, key: str = "models.reranker"):
    """A CrossEncoder; from a plain encoder checkpoint it gets a fresh one-logit head."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(resolve_model(name, key), num_labels=1, max_length=max_length)
    return model
