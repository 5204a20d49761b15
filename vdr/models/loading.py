"""ONE loader for the embedder that params.yaml names, with every check (the reranker's: vdr/models/reranker.py).

    with fields_under("models"):                                 # a stage: its errors name models.embedder
        load_embedder(name, params.models, max_seq_length=...)   # loading kwargs and modality from params
    with fields_as({"embedder": "--model"}):                     # vdr-eval: its errors name --model
        load_embedder(path)                                      # a model as it is

Given the `models` section, a loader passes its model_kwargs/processor_kwargs, checks that the processor
kept the image bounds asked for, and, with models.page_input: image, that the model really reads images.
A folder whose Transformer holds a LoRA adapter (a training stage's `lora` with `merge: false`) loads its base
model (adapter_config.json's base_model_name_or_path, found as any model is) with the adapter on top
(vdr/models/adapters.py). Errors are FieldErrors naming the field `embedder` (`embedder (the base of the adapter
<name>)` for an adapter's base model); the checks below name no field (""), the loaders name it.
"""

from __future__ import annotations

from pathlib import Path

from vdr.errors import FieldError, fields_under
from vdr.models.adapters import adapter_config, load_adapter, read_json
from vdr.models.sources import check_model_source, from_hub, loading_kwargs, resolve_model


def check_processor(model, processor_kwargs: dict | None) -> None:
    """The image bounds asked for must be the ones the processor uses: some versions silently ignore them."""
    wanted = (processor_kwargs or {}).get("size")
    if not wanted:
        return
    image_processor = getattr(getattr(model[0], "processor", None), "image_processor", None)
    if image_processor is None:
        raise FieldError(
            "", "models.processor_kwargs.size is set but the model has no image processor (a text-only model?)"
        )
    size = image_processor.size
    found = {edge: (size.get(edge) if isinstance(size, dict) else getattr(size, edge, None)) for edge in wanted}
    if found != wanted:
        raise FieldError(
            "", f"the image processor ignored models.processor_kwargs.size: asked {wanted}, it uses {size}"
        )


def load_embedder(name: str, models=None, *, max_seq_length: int | None = None):
    """A SentenceTransformer from a folder, a Hub id or `pkg:<package>/<folder>`; `models`: params.yaml's section.
    Errors name the field `embedder`."""
    with fields_under("embedder"):
        return _load_embedder(name, models, max_seq_length)


def _load_embedder(name: str, models, max_seq_length: int | None):
    from sentence_transformers import SentenceTransformer

    kwargs = loading_kwargs(models) if models is not None else {}
    path = resolve_model(name)
    check_model_source(name, path)
    if (base := adapter_base(path)) is not None:
        with base_of_adapter(name):
            model = _load_embedder(base, models, max_seq_length)
        load_adapter(model, Path(path))
        return model
    with from_hub(name, path):
        model = SentenceTransformer(
            path,
            model_kwargs=kwargs.get("model_kwargs") or None,
            processor_kwargs=kwargs.get("processor_kwargs") or None,
        )
    check_loaded(model, models, kwargs)
    if max_seq_length:
        check_token_limit(model, max_seq_length, what="max_seq_length")
        model.max_seq_length = max_seq_length
    return model


def base_of_adapter(name: str):
    """Errors in loading the base model of the adapter `name` say so after the model's field:
    `embedder (the base of the adapter <name>)`."""
    return fields_under(f"(the base of the adapter {name})")


MODEL_JSON = ("modules.json", "config_sentence_transformers.json", "config.json", "sentence_bert_config.json")


def check_json_files(path: str) -> None:
    """Every JSON file a local model folder is described by parses (a file cut short by a copy is named here, not by
    the library's JSON error without a file name); a Hub id or a file is left to the loaders."""
    folder = Path(path)
    for name in MODEL_JSON if folder.is_dir() else ():
        if (folder / name).is_file():
            read_json(folder / name)


def adapter_base(path: str) -> str | None:
    """The base model of a saved LoRA adapter, as its adapter_config.json names it; None for a full model. The
    folder's JSON files are checked first (`check_json_files`)."""
    check_json_files(path)
    config = adapter_config(path)
    if config is None:
        return None
    if not config.get("base_model_name_or_path"):
        raise FieldError("", f"{path} holds a LoRA adapter whose adapter_config.json names no base model")
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


def check_token_limit(model, length: int, field: str = "", what: str = "") -> None:
    """A token limit the model can read; beyond its position table the first long input would fail inside the
    model, minutes into a stage. Otherwise FieldError naming `field` ("": the model), its message starting with
    `what` when given ("max_seq_length 1024 exceeds ...")."""
    limit = position_limit(model)
    if limit is not None and length > limit:
        setting = f"{what} {length}" if what else str(length)
        raise FieldError(
            field,
            f"{setting} exceeds the {limit} token positions the model has (its position embeddings); "
            f"lower the params.yaml key that sets it to at most {limit}",
        )


def check_loaded(model, models, kwargs: dict) -> None:
    """What params.yaml asks of a loaded model: the image bounds it gave, and images when pages are read as images."""
    check_processor(model, kwargs.get("processor_kwargs"))
    if models is not None and models.page_input == "image":
        require_images(model)


def require_images(model) -> None:
    """models.page_input: image needs a model whose processor really handles images."""
    if "image" not in getattr(model, "modalities", []):
        raise FieldError(
            "",
            f"models.page_input is image but this model reads {getattr(model, 'modalities', ['text'])} only; "
            "use a multimodal model, or check that torchvision is installed (the Qwen3-VL processor needs it)",
        )
