"""Find and load the embedder and reranker that params.yaml names: ONE loader for each, with every check.

    load_embedder(name, params.models, max_seq_length=...)   # a stage: loading kwargs and modality from params
    load_embedder(path, key="--model")                       # vdr-eval: a model as it is

Given the `models` section, a loader passes its model_kwargs/processor_kwargs, checks that the processor
kept the image bounds asked for, and, with models.page_input: image, that the model really reads images.
A folder whose Transformer holds a LoRA adapter (a training stage's `lora` with `merge: false`) loads its base
model (adapter_config.json's base_model_name_or_path, found as any model is) with the adapter on top
(vdr/training/lora.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from pathlib import Path
from typing import Any

from vdr.models.adapters import adapter_config, load_adapter

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name, as the Hub spells a model id


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


def check_model_source(name: str, path: str, key: str) -> None:
    """A model named as a local folder must exist; a bare name (no owner/) is neither a folder nor a Hub id."""
    if Path(path).exists():
        return
    if "/" not in name:
        raise ValueError(f"{key}: '{name}' is neither a folder nor a Hub model id (owner/name)")
    if not HUB_ID.match(name):
        raise ValueError(
            f"{key}: the model folder '{Path(path).resolve()}' does not exist; "
            "check the path, or give a Hub model id (owner/name)"
        )


@contextlib.contextmanager
def from_hub(name: str, path: str, key: str):
    """Loading a model that is not a local folder: a failure to fetch it from the Hub (offline, no network, an
    unknown id) becomes one sentence that names the key, the id and the fix."""
    if Path(path).exists():
        yield
        return
    try:
        yield
    except OSError as error:  # huggingface_hub's and transformers' errors (offline, connection, not found)
        from huggingface_hub import constants

        offline = " with HF_HUB_OFFLINE set" if constants.HF_HUB_OFFLINE else ""
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        raise OSError(
            f"{key}: '{name}' is not a local folder ({Path(path).resolve()} does not exist), and the Hub model "
            f"'{name}' could not be loaded from {constants.ENDPOINT}{offline}: {reason}; give a local model "
            "folder (or pkg:<package>/<folder>), or connect to the network, unset HF_HUB_OFFLINE and give an "
            "existing Hub id"
        ) from None


def loading_kwargs(models) -> dict[str, Any]:
    """`model_kwargs` and `processor_kwargs` for both models, from params.yaml's `models` section."""
    model_kwargs = models.model_kwargs.model_dump(exclude_none=True)
    if model_kwargs.get("attn_implementation") == "flash_attention_2":
        import torch

        if importlib.util.find_spec("flash_attn") is None or not torch.cuda.is_available():
            raise ValueError(
                "models.model_kwargs.attn_implementation: flash_attention_2 needs a CUDA GPU "
                "and the flash-attn package "
                "(pip install flash-attn --no-build-isolation); without them set it to sdpa "
                "(dvc exp run -S profile=blog -S models.model_kwargs.attn_implementation=sdpa)"
            )
    return {"model_kwargs": model_kwargs, "processor_kwargs": models.processor_kwargs.model_dump(exclude_none=True)}


def check_processor(model, processor_kwargs: dict | None, key: str) -> None:
    """The image bounds asked for must be the ones the processor uses: some versions silently ignore them."""
    wanted = (processor_kwargs or {}).get("size")
    if not wanted:
        return
    image_processor = getattr(getattr(model[0], "processor", None), "image_processor", None)
    if image_processor is None:
        raise ValueError(
            f"{key}: models.processor_kwargs.size is set but the model has no image processor (a text-only model?)"
        )
    size = image_processor.size
    found = {edge: (size.get(edge) if isinstance(size, dict) else getattr(size, edge, None)) for edge in wanted}
    if found != wanted:
        raise ValueError(
            f"{key}: the image processor ignored models.processor_kwargs.size: asked {wanted}, it uses {size}"
        )


def load_embedder(name: str, models=None, *, max_seq_length: int | None = None, key: str = "models.embedder"):
    """A SentenceTransformer from a folder, a Hub id or `pkg:<package>/<folder>`; `models`: params.yaml's section."""
    from sentence_transformers import SentenceTransformer

    kwargs = loading_kwargs(models) if models is not None else {}
    path = resolve_model(name, key)
    check_model_source(name, path, key)
    if (base := adapter_base(path, key)) is not None:
        model = load_embedder(
            base, models, max_seq_length=max_seq_length, key=f"{key} (the base of the adapter {name})"
        )
        load_adapter(model, Path(path), key)
        return model
    with from_hub(name, path, key):
        model = SentenceTransformer(
            path,
            model_kwargs=kwargs.get("model_kwargs") or None,
            processor_kwargs=kwargs.get("processor_kwargs") or None,
        )
    _check(model, models, kwargs, key)
    if max_seq_length:
        check_token_limit(model, max_seq_length, f"{key}: max_seq_length")
        model.max_seq_length = max_seq_length
    return model


def load_reranker(name: str, models=None, *, max_length: int | None = None, key: str = "models.reranker"):
    """A CrossEncoder. A saved reranker (a CrossEncoder folder or Hub id, such as a multimodal reranker with
    its any-to-any Transformer + LogitScore) loads as it is. A plain encoder checkpoint (a sentence-transformers
    or transformers folder) gets a fresh scoring head: mean pooling over the (query, page) tokens, then one
    linear unit. Mean pooling, not BERT's [CLS] pooler: the pooler of a sentence-embedding checkpoint is
    untrained, and a classifier on it barely learns from hard negatives."""
    from sentence_transformers import CrossEncoder

    kwargs = loading_kwargs(models) if models is not None else {}
    model_kwargs, processor_kwargs = kwargs.get("model_kwargs") or None, kwargs.get("processor_kwargs") or None
    path = resolve_model(name, key)
    check_model_source(name, path, key)
    if (base := adapter_base(path, key)) is not None:
        model = load_reranker(base, models, max_length=max_length, key=f"{key} (the base of the adapter {name})")
        load_adapter(model, Path(path), key)
        return model
    if not Path(path).is_dir() or _is_cross_encoder(Path(path)):
        with from_hub(name, path, key):
            model = CrossEncoder(
                path, num_labels=1, max_length=max_length, model_kwargs=model_kwargs, processor_kwargs=processor_kwargs
            )
    else:
        model = _mean_pooling_cross_encoder(path, max_length, model_kwargs)
    _check(model, models, kwargs, key)
    if max_length:
        check_token_limit(model, max_length, f"{key}: max_length")
    return model


def adapter_base(path: str, key: str) -> str | None:
    """The base model of a saved LoRA adapter, as its adapter_config.json names it; None for a full model."""
    config = adapter_config(path)
    if config is None:
        return None
    if not config.get("base_model_name_or_path"):
        raise ValueError(f"{key}: {path} holds a LoRA adapter whose adapter_config.json names no base model")
    return config["base_model_name_or_path"]


def position_limit(model) -> int | None:
    """The most tokens a model with a learned table of absolute positions (BERT, MiniLM, RoBERTa) can read; None for
    one without such a table (rotary positions, as in Qwen3-VL, have no fixed length)."""
    import torch

    encoder = getattr(model[0], "auto_model", None)
    if encoder is None:
        return None
    for name, module in encoder.named_modules():
        if "vis" in name:  # a vision tower's table counts image patches, not text tokens
            continue
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0  # RoBERTa counts from 2
            return module.num_embeddings - offset
    return None


def check_token_limit(model, length: int, what: str) -> None:
    """A token limit (`what`: the key and the setting, e.g. "models.embedder: max_seq_length") the model can read;
    beyond its position table the first long input would fail inside the model, minutes into a stage."""
    limit = position_limit(model)
    if limit is not None and length > limit:
        raise ValueError(
            f"{what} {length} exceeds the {limit} token positions the model has (its position embeddings); "
            f"lower the params.yaml key that sets it to at most {limit}"
        )


def _check(model, models, kwargs: dict, key: str) -> None:
    """What params.yaml asks of a loaded model: the image bounds it gave, and images when pages are read as images."""
    check_processor(model, kwargs.get("processor_kwargs"), key)
    if models is not None and models.page_input == "image":
        require_images(model, key)


def _is_cross_encoder(folder: Path) -> bool:
    import json

    config = folder / "config_sentence_transformers.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == "CrossEncoder"


def _mean_pooling_cross_encoder(path: str, max_length: int | None, model_kwargs: dict | None):
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling

    transformer = Transformer(
        path, transformer_task="feature-extraction", max_seq_length=max_length, model_kwargs=model_kwargs or None
    )
    if getattr(transformer.model, "pooler", None) is not None:
        transformer.model.pooler = (
            None  # BERT's [CLS] pooler goes unused under mean pooling (and DDP wants every weight used)
        )
    width = transformer.get_embedding_dimension()
    head = Dense(width, 1, activation_function=torch.nn.Identity(), module_output_name="scores")
    return CrossEncoder(modules=[transformer, Pooling(width, "mean"), head])


def require_images(model, key: str) -> None:
    """models.page_input: image needs a model whose processor really handles images."""
    if "image" not in getattr(model, "modalities", []):
        raise ValueError(
            f"{key}: models.page_input is image but this model reads {getattr(model, 'modalities', ['text'])} only; "
            "use a multimodal model, or check that torchvision is installed (the Qwen3-VL processor needs it)"
        )


def keep_first_layers(model, num_layers: int | None, key: str = "train_reranker.num_layers") -> None:
    """Keep only the first `num_layers` layers of the model's Transformer stack (the `layer` or `layers` list of its
    encoder or decoder), in place, and record it in its config so that the saved model loads as it is. A smaller
    model from the same checkpoint: each kept layer starts from its trained weights. None keeps them all."""
    import torch

    if num_layers is None:
        return
    network = model[0].model  # the Transformer module's Hugging Face model
    stacks = [
        (name, module)
        for name, module in network.named_modules()
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers")
    ]
    if not stacks:
        raise ValueError(f"{key}: found no list of Transformer layers in {type(network).__name__}; set it to null")
    name, layers = max(stacks, key=lambda stack: len(stack[1]))  # the text stack, not a smaller vision tower's
    if num_layers > len(layers):
        raise ValueError(f"{key}: {num_layers} layers asked, the model has {len(layers)} ({name}); lower it or null")
    del layers[num_layers:]
    config = network.config
    for field in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(config, field):
            setattr(config, field, num_layers)
            break
