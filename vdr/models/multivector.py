"""Loading a late-interaction (multi-vector) model: a sentence-transformers MultiVectorEncoder.

    model = load_multivector(name, params.models, projection_dim=128, seed=42, query_length=64, document_length=128)

From a plain checkpoint (a sentence-transformers or transformers folder, a Hub id, `pkg:<package>/<folder>`: found
as vdr/models/loading.py finds any model) it gets a fresh projection of its token vectors to `projection_dim`, drawn
from `seed`, so the untrained base model and the start of training are the same model. A saved multi-vector model
(a MultiVectorEncoder or ColBERT folder) loads as it is. Encoding and MaxSim search: vdr/retrieval/maxsim.py.
Errors are FieldErrors (vdr/errors.py) naming `embedder` (as vdr/models/loading.py names them), `query_length` or
`document_length`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from vdr.errors import FieldError, fields_under
from vdr.models.adapters import load_adapter, transformer_folder
from vdr.models.finite import model_name
from vdr.models.loading import adapter_base, base_of_adapter, check_processor, check_token_limit, require_images
from vdr.models.sources import check_model_source, from_hub, loading_kwargs, resolve_model

LATE_INTERACTION_TYPES = ("MultiVectorEncoder", "ColBERT")  # config_sentence_transformers.json model_type


def load_multivector(
    name: str,
    models=None,
    *,
    projection_dim: int | None = None,
    seed: int = 0,
    query_length: int | None = None,
    document_length: int | None = None,
):
    """A MultiVectorEncoder from a folder, a Hub id or `pkg:<package>/<folder>`; `models`: params.yaml's section
    (its model_kwargs, processor_kwargs and page_input, checked as vdr/models/loading.py checks them).

    A saved multi-vector model loads as it is. Any other checkpoint becomes one: its token vectors (after the
    checkpoint's own Dense head, if it has one) go through a fresh linear projection to `projection_dim` (no bias,
    weights drawn from `seed` as torch draws a Linear layer's), then the library's scoring mask and unit length.
    `query_length` / `document_length`: the token limits of queries and pages (None: the model's own limit; never
    set one for page screenshots, whose image tokens must not be cut). A folder holding a LoRA adapter (a training
    stage's `lora` with `merge: false`) loads its base model this way, then the adapter and the trained projection.
    Errors name the field `embedder`, and `query_length` / `document_length` for a limit beyond the model's.
    """
    lengths = {"query_length": query_length, "document_length": document_length}
    with fields_under("embedder"):
        model, lengths = _load_multivector(name, models, projection_dim, seed, lengths)
    transformer = model[0]
    for setting, length in lengths.items():
        if length is not None:
            check_token_limit(model, length, setting)
            setattr(transformer, setting, length)
    return model


def _load_multivector(name: str, models, projection_dim: int | None, seed: int, lengths: dict):
    """load_multivector's model, and the token limits it gets: `lengths`, or where one is None the limit a saved
    adapter was trained with."""
    from sentence_transformers import MultiVectorEncoder

    kwargs = loading_kwargs(models) if models is not None else {}
    path = resolve_model(name)
    check_model_source(name, path)
    document_length = lengths["document_length"]
    if models is not None and models.page_input == "image" and document_length is not None:
        raise FieldError(
            "",
            f"pages are read as images (models.page_input: image), and a document_length of "
            f"{document_length} tokens would cut their image tokens; set train_multivector.document_length: null",
        )
    if (base := adapter_base(path)) is not None:
        saved = saved_adapter_settings(Path(path))  # what is not given: as the adapter was trained and saved
        lengths = {setting: saved[setting] if length is None else length for setting, length in lengths.items()}
        with base_of_adapter(name):
            model, lengths = _load_multivector(base, models, projection_dim or saved["projection_dim"], seed, lengths)
        load_adapter(model, Path(path))
        return model, lengths
    with from_hub(name, path):
        saved = is_late_interaction(path)
        own_head = has_dense_head(path)
        model = MultiVectorEncoder(
            path,
            model_kwargs=kwargs.get("model_kwargs") or None,
            processor_kwargs=kwargs.get("processor_kwargs") or None,
        )
    if not saved:
        if projection_dim is None:
            raise FieldError(
                "",
                f"'{name}' is not a multi-vector model, so it needs a fresh projection; "
                "set train_multivector.projection_dim",
            )
        fresh_projection(model, projection_dim, seed, replace_library_head=not own_head)
    check_processor(model, kwargs.get("processor_kwargs"))
    if models is not None and models.page_input == "image":
        require_images(model)
    return model, lengths


def saved_adapter_settings(folder: Path) -> dict:
    """A multi-vector model saved as a LoRA adapter (lora.merge: false): the width of its trained projection and the
    token limits it was saved with, which its base model is rebuilt with."""
    modules = json.loads((folder / "modules.json").read_text())
    projection = [entry["path"] for entry in modules if entry["type"].endswith("Dense")][-1]
    width = json.loads((folder / projection / "config.json").read_text())["out_features"]
    lengths = json.loads((transformer_folder(folder) / "sentence_bert_config.json").read_text())
    return {
        "projection_dim": width,
        "query_length": lengths.get("query_length"),
        "document_length": lengths.get("document_length"),
    }


def is_late_interaction(path: str) -> bool:
    """Whether the checkpoint is a multi-vector model already (a MultiVectorEncoder or PyLate save, a Stanford
    ColBERT, a transformers `...ForRetrieval` model such as ColPali): then it keeps its own projection."""
    from sentence_transformers.util import load_file_path

    settings = load_file_path(path, "config_sentence_transformers.json")
    if settings is not None and json.loads(Path(settings).read_text()).get("model_type") in LATE_INTERACTION_TYPES:
        return True
    config = load_file_path(path, "config.json")
    architectures = (json.loads(Path(config).read_text()).get("architectures") or []) if config else []
    return any(a == "HF_ColBERT" or a.endswith("ForRetrieval") for a in architectures)


def has_dense_head(path: str) -> bool:
    """Whether a sentence-transformers checkpoint has a Dense module of its own (kept, at token level, before the
    fresh projection); without one, the library appends a random projection, which the fresh one replaces."""
    from sentence_transformers.util import load_file_path

    modules = load_file_path(path, "modules.json")
    if modules is None:
        return False
    return any(entry.get("type", "").endswith("Dense") for entry in json.loads(Path(modules).read_text()))


def fresh_projection(model, projection_dim: int, seed: int, replace_library_head: bool) -> None:
    """Put a seeded linear projection (no bias) to `projection_dim` right before the scoring mask, in place: instead
    of the random one the library added (`replace_library_head`), or after the checkpoint's own Dense head."""
    import torch
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    modules = list(model)
    mask = next((i for i, m in enumerate(modules) if isinstance(m, MultiVectorMask)), None)
    if mask is None or mask < 1:
        raise ValueError(f"{model_name(model)}: no MultiVectorMask after a Transformer; not a multi-vector model")
    at = mask - 1 if replace_library_head else mask
    if replace_library_head and not isinstance(modules[at], Dense):
        raise ValueError(f"{model_name(model)}: expected the library's projection before the scoring mask")
    width = modules[at - 1].get_embedding_dimension()
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(width)  # torch's default for a Linear layer: uniform in +-1/sqrt(fan_in)
    weight = (torch.rand(projection_dim, width, generator=generator) * 2 - 1) * bound
    projection = Dense(
        width,
        projection_dim,
        bias=False,
        activation_function=torch.nn.Identity(),
        init_weight=weight,
        module_input_name="token_embeddings",
    )
    reference = next(modules[0].parameters())
    projection.to(device=reference.device, dtype=reference.dtype)
    if replace_library_head:
        model[at] = projection
    else:
        model.insert(at, projection)


def projection_index(model) -> int:
    """The position of the projection in the model: its last Dense module."""
    from sentence_transformers.base.modules.dense import Dense

    found = [i for i, module in enumerate(model) if isinstance(module, Dense)]
    if not found:
        raise ValueError(f"{model_name(model)}: the multi-vector model has no projection (Dense) module")
    return found[-1]


def projection_parameters(model, prefix: str = "model.") -> str:
    """A regular expression for the projection's parameter names as a loss sees them (the loss holds the model as
    `model`): the trainer's learning_rate_mapping gives them their own learning rate."""
    return rf"^{re.escape(prefix)}{projection_index(model)}\."
