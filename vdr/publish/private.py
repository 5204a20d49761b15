"""What a published card may show of params.yaml: the one list of keys whose values can name something only the machine
that ran the pipeline has (a folder, a server), and the placeholder a card prints in their place.

A card built from this run's params (its reproduce command, its training parameters, its base model's name) passes
every value through `public_value`; `placeholder_note` says which keys were replaced, so a reader knows to put their
own there.
"""

from __future__ import annotations

from pathlib import Path

from vdr.publish.hub import hub_model_id

PLACEHOLDERS = {  # params.yaml key: what a card prints instead of its value
    "fetch.path": "DIR",  # the folder of your documents (documents) or of a dataset on disk (local)
    "generate.base_url": "URL",  # the query generator's server
    "train_embedder.rdzv_endpoint": "HOST:PORT",  # node 0 of a multi-node training run
    "train_reranker.rdzv_endpoint": "HOST:PORT",
    "train_multivector.rdzv_endpoint": "HOST:PORT",
    "models.embedder": "MODEL_DIR",  # a model: replaced only when it is a local folder (is_local_folder)
    "models.reranker": "MODEL_DIR",
    "generate.model": "MODEL_DIR",
}
MODEL_KEYS = {"models.embedder", "models.reranker", "generate.model"}


def is_private(key: str, value) -> bool:
    """Whether the value of `key` names something of this machine only (an empty or null value names nothing)."""
    if key not in PLACEHOLDERS or value in (None, ""):
        return False
    if key in MODEL_KEYS:
        return is_local_folder(str(value))
    return True


def is_local_folder(name: str) -> bool:
    """A model named by a path of this machine: absolute, relative to the home or working folder, or one that exists
    here. A Hub id, a `pkg:` model and the name a server gives its model are not."""
    if name.startswith("pkg:") or hub_model_id(name) is not None:
        return False
    return name.startswith(("/", "~", "./", "../", "\\")) or Path(name).is_absolute() or Path(name).exists()


def public_value(key: str, value):
    """The value a published card shows for `key`: the value itself, or its placeholder."""
    return PLACEHOLDERS[key] if is_private(key, value) else value


def public_params(sections: dict) -> tuple[dict, list[str]]:
    """params.yaml's `sections` (nested) as a card shows them, and the keys whose values were replaced."""
    replaced = []

    def walk(tree: dict, prefix: str) -> dict:
        shown = {}
        for name, value in tree.items():
            key = f"{prefix}{name}"
            if isinstance(value, dict):
                shown[name] = walk(value, f"{key}.")
            else:
                shown[name] = public_value(key, value)
                if is_private(key, value):
                    replaced.append(key)
        return shown

    return walk(sections, ""), replaced


def placeholder_note(keys) -> str:
    """One sentence naming the placeholders shown and the keys they stand for; empty when nothing was replaced."""
    keys = sorted(set(keys))
    if not keys:
        return ""
    shown = ", ".join(f"`{PLACEHOLDERS[key]}` for `{key}`" for key in keys)
    return (
        f"Values of this run that name a folder or a server of the machine it ran on are not published: {shown}. "
        "Put your own there."
    )
