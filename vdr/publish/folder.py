"""Edits of a saved model folder before it is published: its adapter's base model name, its output size; and what
a folder must hold to be pushed."""

from __future__ import annotations

import json
from pathlib import Path

from vdr.models.adapters import adapter_config, transformer_folder
from vdr.publish.hub import hub_model_id


def set_adapter_base(folder: Path, base: str | None) -> None:
    """A published LoRA adapter names its base model by its Hub id (when it has one), so that it loads anywhere;
    params.yaml may name it as a `pkg:` or a folder only this machine has."""
    config = adapter_config(folder)
    if config is None or base is None:
        return
    config["base_model_name_or_path"] = base
    path = transformer_folder(folder) / "adapter_config.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def set_truncate_dim(folder: Path, truncate_dim: int | None) -> None:
    """publish.truncate_dim becomes the published model's default output size
    (sentence-transformers reads it at load)."""
    set_config_value(folder / "config_sentence_transformers.json", "truncate_dim", truncate_dim)


def set_max_seq_length(folder: Path, max_seq_length: int | None) -> None:
    """evaluate.max_seq_length becomes the published model's token limit (sentence-transformers reads it at load), so
    that the model loads as it was evaluated and its card's numbers hold; null keeps the saved one."""
    set_config_value(folder / "sentence_bert_config.json", "max_seq_length", max_seq_length)


def set_config_value(config_path: Path, key: str, value) -> None:
    """`key` set to `value` in the JSON file `config_path` (created if missing); None leaves the file as it is."""
    if value is None:
        return
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config[key] = value
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def require_hub_base(train, base: str, section: str) -> None:
    """A LoRA adapter published alone (`section`.lora with merge: false) loads its base model by the name it holds:
    pushed, that must be a Hub model, not a folder of this machine that nobody else has (nor should see)."""
    if train is None or train.lora is None or train.lora.merge or hub_model_id(base) is not None:
        return
    raise ValueError(
        f"{section}.lora: publish.push is true and the adapter is published without its base model, a local folder "
        f"({base}) that the Hub cannot name, so nobody could load it; set {section}.lora.merge: true to publish a "
        "full model, or train from a model on the Hub"
    )
