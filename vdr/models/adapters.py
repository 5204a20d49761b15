"""Loading a model saved with its LoRA adapter only (the load side; vdr/training/lora.py trains and saves one).

The base model is loaded as any model (a `pkg:`, a folder or a Hub id), the adapter goes on top
(`load_adapter`), then the weights of the modules saved after the Transformer (a trained head).
peft is called directly: the PEFT integration of the pinned transformers needs a newer peft than the lock's.
Errors are FieldErrors about the model (field "") or its `target_modules`: the loader or trainer names them.
"""

from __future__ import annotations

import json
from pathlib import Path

from vdr.errors import FieldError

ADAPTER_NAME = "default"  # peft's name for a model's one adapter


ADAPTER_CONFIG = "adapter_config.json"


ADAPTER_WEIGHTS = "adapter_model.safetensors"


PEFT_PREFIX = "base_model.model."  # PEFT's prefix of every key in adapter_model.safetensors


VISION_TOWERS = ("visual", "vision_tower", "vision_model")  # Qwen-VL, LLaVA-style, SigLIP/CLIP-style names


def backbone(model):
    """The transformers model inside the sentence-transformers model (its Transformer module)."""
    found = model.transformers_model
    if found is None:
        raise FieldError("", "the model has no Transformer module, so there is nothing to adapt or freeze")
    return found


def vision_tower(network) -> str | None:
    """The dotted name of the model's vision tower (the outermost submodule with a vision-tower name); None for a
    model that reads text only."""
    names = [name for name, _ in network.named_modules() if name.rsplit(".", 1)[-1] in VISION_TOWERS]
    return min(names, key=len) if names else None


def inject(network, config) -> None:
    """Put fresh LoRA layers into `network` in place; only they train in it (float32 weights, as peft's default)."""
    from peft.tuners.lora import LoraModel
    from peft.tuners.tuners_utils import cast_adapter_dtype

    try:
        LoraModel(network, config, ADAPTER_NAME)
    except ValueError as error:  # peft: no layer matches target_modules (or every match is excluded)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        targets = config.target_modules if isinstance(config.target_modules, str) else sorted(config.target_modules)
        raise FieldError(
            "target_modules",
            f"{targets!r} adapts no layer of {type(network).__name__} "
            f"(peft: {reason}); name its linear layers (e.g. [q_proj, v_proj]) or use all-linear",
        ) from None
    cast_adapter_dtype(network, ADAPTER_NAME)


def transformer_folder(folder: Path) -> Path:
    """Where a saved sentence-transformers model keeps its Transformer module (modules.json's first entry)."""
    modules = folder / "modules.json"
    if not modules.is_file():
        return folder
    return folder / read_json(modules)[0]["path"]


def load_adapter_weights(network, path: Path) -> None:
    """Set the adapter's weights from `path`, as PEFT reads them; every adapter weight must come from the file."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if not path.is_file():
        raise FieldError(
            "",
            f"{path.parent / ADAPTER_CONFIG} names a LoRA adapter, but its weights {path.name} are not beside it; "
            "copy the whole folder the training stage saved",
        )
    try:
        saved = {name.removeprefix(PEFT_PREFIX): value for name, value in load_file(str(path)).items()}
    except Exception as error:  # safetensors' own error type: a file cut short, or not safetensors at all
        raise FieldError(
            "", f"{path} is not a readable safetensors file ({error}); copy it again from where it was saved"
        ) from None
    result = set_peft_model_state_dict(network, saved, adapter_name=ADAPTER_NAME)
    missing = [name for name in result.missing_keys if f".{ADAPTER_NAME}." in name]
    unused = list(result.unexpected_keys)
    if missing or unused:
        raise ValueError(
            f"{path}: the adapter does not fit the model: {len(missing)} adapter weights not in the file "
            f"{missing[:3]}, {len(unused)} weights in the file that the model has no place for {unused[:3]}; "
            "was it saved from another base model or another peft version?"
        )


def adapter_config(folder: str | Path) -> dict | None:
    """The adapter_config.json of a saved model whose Transformer holds a LoRA adapter; None for a full model."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    path = transformer_folder(folder) / ADAPTER_CONFIG
    return read_json(path) if path.is_file() else None


def read_json(path: Path):
    """A model folder's JSON file; one that does not parse is a FieldError naming it (a copy cut short, an edit)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise FieldError(
            "",
            f"{path} is not valid JSON ({error}); the model folder is damaged: copy it again from where it was saved",
        ) from None


def load_adapter(model, folder: Path) -> None:
    """Turn `model`, freshly loaded from the adapter's base model, into the model saved in `folder`: the adapter on
    its Transformer, the saved weights of the modules after it, and the saved output size (truncate_dim)."""
    from peft import LoraConfig

    inject(backbone(model), LoraConfig.from_pretrained(str(transformer_folder(folder))))
    load_saved_weights(model, folder)
    settings = folder / "config_sentence_transformers.json"
    truncate_dim = read_json(settings).get("truncate_dim") if settings.is_file() else None
    if truncate_dim is not None and hasattr(model, "truncate_dim"):
        model.truncate_dim = truncate_dim
    model.eval()


def load_saved_weights(model, folder: Path) -> None:
    """The trained weights of a model saved with its adapter only: the adapter's, and those of the modules after
    the Transformer (a trained head)."""
    load_adapter_weights(backbone(model), transformer_folder(folder) / ADAPTER_WEIGHTS)
    if not (folder / "modules.json").is_file():
        raise FieldError(
            "",
            f"{folder} holds a LoRA adapter but no modules.json, so it is not a sentence-transformers model saved "
            "with its adapter; copy the whole folder the training stage saved",
        )
    entries = read_json(folder / "modules.json")
    if len(entries) != len(model):
        raise FieldError(
            "",
            f"{folder} has {len(entries)} modules but its base model {len(model)}; "
            "the adapter was saved from another model",
        )
    for entry, module in zip(entries[1:], list(model)[1:]):
        if module.state_dict():  # a trained head; Pooling, Normalize and LogitScore carry no weights
            module.load_state_dict(type(module).load(str(folder), subfolder=entry["path"]).state_dict())
