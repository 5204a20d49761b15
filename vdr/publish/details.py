"""What a published model is, read from the model itself loaded from its published folder: its kind, token limits,
output size, similarity function, architecture (as `print(model)` shows it) and the libraries' versions."""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass, field

LIBRARIES = {  # the libraries a card's framework versions name, by their distribution names
    "Sentence Transformers": "sentence-transformers",
    "Transformers": "transformers",
    "PyTorch": "torch",
    "Accelerate": "accelerate",
    "Datasets": "datasets",
    "Tokenizers": "tokenizers",
    "PEFT": "peft",
}

KINDS = {  # sentence-transformers' class: what a card calls it
    "SentenceTransformer": "Sentence Transformer",
    "CrossEncoder": "Cross Encoder",
    "MultiVectorEncoder": "Multi-Vector Encoder",
}


@dataclass(frozen=True)
class ModelDetails:
    kind: str  # a key of KINDS
    architecture: str  # print(model)
    max_seq_length: int | None = None
    output_dims: int | None = None  # the embedding size (per token, for a multi-vector model); a reranker's scores
    similarity: str | None = None  # similarity_fn_name; a reranker's activation function
    modalities: tuple[str, ...] = ("text",)
    lengths: dict = field(default_factory=dict)  # a multi-vector model's query_length and document_length
    versions: dict = field(default_factory=dict)  # framework_versions()


def framework_versions() -> dict[str, str]:
    """Python and the libraries of LIBRARIES that are installed, with their versions."""
    versions = {"Python": platform.python_version()}
    for name, distribution in LIBRARIES.items():
        try:
            versions[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def model_details(model) -> ModelDetails:
    """The details of a loaded SentenceTransformer, CrossEncoder or MultiVectorEncoder."""
    kind = type(model).__name__
    if kind not in KINDS:
        kind = next((base.__name__ for base in type(model).__mro__ if base.__name__ in KINDS), kind)
    if kind == "CrossEncoder":
        dims = getattr(model, "num_labels", None)
        activation = getattr(model, "activation_fn", None)
        similarity = type(activation).__name__ if activation is not None else None
    else:
        dims = getattr(model, "truncate_dim", None) or model.get_embedding_dimension()
        similarity = getattr(model, "similarity_fn_name", None)
    transformer = model[0]
    lengths = {
        name: getattr(transformer, name)
        for name in ("query_length", "document_length")
        if getattr(transformer, name, None) is not None
    }
    return ModelDetails(
        kind=kind,
        architecture=str(model),
        max_seq_length=getattr(model, "max_seq_length", None),
        output_dims=dims,
        similarity=similarity,
        modalities=tuple(str(modality) for modality in getattr(model, "modalities", ["text"])),
        lengths=lengths,
        versions=framework_versions(),
    )
