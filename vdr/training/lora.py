"""LoRA adapters and a frozen vision tower for the training stages; saving a model with its adapter.

    adapter = prepare(model, config, params.models.embedder, "train_embedder")   # before the trainer is built
    ...                                                                          # train as usual
    save(model, paths.output, checkpointing, adapter)                            # vdr/training/trainer.py:
    write_model here

`dropout` sets every dropout layer's rate while training (null: the model's own). `freeze_vision: true` freezes
the vision tower (Qwen3-VL's `visual`). `lora: {r, alpha, ...}` attaches fresh LoRA adapters (peft) to the chosen
linear layers of the model's Transformer and freezes the rest of it; modules after it (a fresh CrossEncoder scoring
unit) still train. With both, no adapter goes into the vision tower. The stage prints its trainable and total
parameters.

Saving (`write_model`, inside vdr/training/trainer.py's atomic save): with `lora.merge: false` the folder is the
sentence-transformers model with its Transformer's weights replaced by the adapter in PEFT's layout
(adapter_config.json, naming the base model as params.yaml does, and adapter_model.safetensors): megabytes instead
of the full weights. The adapter is then read back as the loaders read it and compared to the trained weights, so
an adapter that would load as something else (keys the loader skips, a cast) stops the stage, naming the file.
With `lora.merge: true` the adapters are merged into the base weights and the folder is a full model.

Loading (`load_adapter`, from vdr/models/loading.py): the base model is loaded as any model (a `pkg:`, a folder or a
Hub id), the adapter goes on top, then the weights of the modules saved after the Transformer (a trained head).

peft is called directly: the PEFT integration of the pinned transformers needs a newer peft than the lock's.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from vdr.errors import FieldError, fields_under
from vdr.models.adapters import (
    ADAPTER_NAME,
    ADAPTER_WEIGHTS,
    PEFT_PREFIX,
    VISION_TOWERS,
    backbone,
    inject,
    load_adapter_weights,
    load_saved_weights,
    transformer_folder,
    vision_tower,
)

FULL_WEIGHTS = re.compile(r"^(config\.json|(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?)$")


@dataclass(frozen=True)
class Adapter:
    """What `prepare` attached, and how `write_model` saves it."""

    config: object  # peft.LoraConfig, base_model_name_or_path as params.yaml names the base model
    merge: bool


def has_adapter(network) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return network is not None and any(isinstance(module, BaseTunerLayer) for module in network.modules())


def lora_config(settings, base: str, exclude: str | None = None):
    """A peft LoraConfig from params.yaml's `lora` section; `exclude`: a submodule left without adapters."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        exclude_modules=None if exclude is None else rf"{re.escape(exclude)}(\..*)?",
        base_model_name_or_path=base,
    )


def set_dropout(model, rate: float | None) -> None:
    """Every dropout layer (torch.nn.Dropout) of `model` at `rate` while it trains: train_*.dropout; None leaves the
    rates its config gives. Dropout acts only in training, so the saved model scores as before, and its config.json
    keeps the model's own rates. `prepare` sets it before attaching adapters, which bring their own (lora.dropout).

    At 0 a CPU trains a BERT-like model about a third faster: no random masks are drawn, and attention takes torch's
    fused kernel, which it cannot with attention dropout (docs/timing.md)."""
    if rate is None:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters of the whole sentence-transformers model."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def prepare(model, train, base: str, section: str) -> Adapter | None:
    """Set the dropout rate (`train.dropout`, set_dropout), freeze the vision tower (`train.freeze_vision`) and
    attach LoRA adapters (`train.lora`), in that order (the adapters keep their own dropout), then print the
    trainable and total parameters under the name `section` (the training stage's params.yaml section); returns the
    adapter to save, None for full finetuning. Errors are FieldErrors under `section` (vdr/errors.py)."""
    with fields_under(section):
        return _prepare(model, train, base, section)


def _prepare(model, train, base: str, section: str) -> Adapter | None:
    set_dropout(model, train.dropout)
    network = getattr(model, "transformers_model", None)
    if has_adapter(network):
        raise FieldError(
            "",
            f"the base model {base} is a saved LoRA adapter; train from its base model, "
            "or from a merged one (lora.merge: true)",
        )
    if train.freeze_vision or train.lora is not None:
        network = backbone(model)
    tower = vision_tower(network) if train.freeze_vision else None
    if train.freeze_vision and tower is None:
        raise FieldError(
            "freeze_vision",
            f"the model ({type(network).__name__}) has no vision tower (no submodule named "
            f"{', '.join(VISION_TOWERS)}): it reads text only; set {section}.freeze_vision to false",
        )
    if tower is not None:
        network.get_submodule(tower).requires_grad_(False)
    adapter = None
    if train.lora is not None:
        # peft draws the adapters' first weights from torch's generator: the training stages seed it before this
        config = lora_config(train.lora, base, exclude=tower)
        with fields_under("lora"):
            inject(network, config)
        adapter = Adapter(config, train.lora.merge)
    trainable, total = parameter_counts(model)
    what = []
    if adapter is not None:
        lora = train.lora
        what.append(f"LoRA r={lora.r} alpha={lora.alpha:g} on {lora.target_modules}")
    if tower is not None:
        what.append(f"vision tower `{tower}` frozen")
    print(
        f"{section}: {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%)"
        + (f"; {', '.join(what)}" if what else "; full finetuning")
    )
    if trainable == 0:
        raise FieldError("", "no parameter is left to train; check lora and freeze_vision")
    return adapter


def adapter_weights(network) -> dict:
    """The adapter's trained weights, as `network`'s parameter names give them."""
    return {name: p.detach().clone() for name, p in network.named_parameters() if f".{ADAPTER_NAME}." in name}


def merge(network) -> None:
    """Merge every LoRA layer into its base weight and put the plain layer back: a model without peft layers."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(network.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge(safe_merge=True)  # refuses a merge that gives NaN
            parent, _, child = name.rpartition(".")
            setattr(network.get_submodule(parent) if parent else network, child, module.get_base_layer())
    if hasattr(network, "peft_config"):
        del network.peft_config


def write_model(model, folder: Path, adapter: Adapter | None) -> None:
    """Save `model` into the fresh `folder`: as it is (full finetuning), merged, or with its adapter only."""
    if adapter is not None and adapter.merge:
        merge(backbone(model))
    model.save_pretrained(str(folder), create_model_card=False)  # its card records wall time; publish writes one
    if adapter is None or adapter.merge:
        return
    network = backbone(model)
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    transformer = transformer_folder(folder)
    for path in transformer.iterdir():  # the Transformer's full weights and config: the base model gives them
        if path.is_file() and FULL_WEIGHTS.match(path.name):
            path.unlink()
    # no Hub look-up of the base model (peft's `auto` asks whether the vocabulary was resized): it never is here
    weights = get_peft_model_state_dict(network, adapter_name=ADAPTER_NAME, save_embedding_layers=False)
    save_file(
        {PEFT_PREFIX + name: value.contiguous() for name, value in weights.items()}, transformer / ADAPTER_WEIGHTS
    )
    config = copy.deepcopy(adapter.config)
    config.inference_mode = True  # as peft saves an adapter: loaded for use, not for more training
    if isinstance(config.target_modules, set):  # peft resolves all-linear to a set: saved in a repeatable order
        config.target_modules = sorted(config.target_modules)
    config.save_pretrained(str(transformer))
    check_saved_adapter(network, transformer / ADAPTER_WEIGHTS)


def check_saved_adapter(network, path: Path) -> None:
    """Read the adapter back from `path` as the loaders do; its weights must be exactly the trained ones."""
    import torch

    trained = adapter_weights(network)
    load_adapter_weights(network, path)
    loaded = adapter_weights(network)
    differ = [name for name, value in trained.items() if name not in loaded or not torch.equal(value, loaded[name])]
    if differ or not trained:
        raise ValueError(
            f"{path}: reading the saved adapter back gives other weights than the trained ones "
            f"({len(differ)} of {len(trained)} differ, e.g. {differ[:3]}); the adapter was not saved correctly"
        )


def adapter_trainer(trainer_class):
    """`trainer_class` (a sentence-transformers trainer) whose checkpoints hold the adapter and the modules after the
    Transformer, as `write_model` saves them, and resume from them: the full weights of a model with LoRA layers in
    place would not load back into it."""

    class AdapterTrainer(trainer_class):
        def _save(self, output_dir=None, state_dict=None):
            import torch
            from transformers.trainer import TRAINING_ARGS_NAME

            output = Path(output_dir or self.args.output_dir)
            output.mkdir(parents=True, exist_ok=True)
            with fields_under("checkpoint"):
                config = backbone(self.model).peft_config[ADAPTER_NAME]
                write_model(self.model, output, Adapter(config, merge=False))
            torch.save(self.args, output / TRAINING_ARGS_NAME)

        def _load_from_checkpoint(self, checkpoint_path, model=None):
            with fields_under("checkpoint"):
                load_saved_weights(self.model, Path(checkpoint_path))

    AdapterTrainer.__name__ = AdapterTrainer.__qualname__ = f"Adapter{trainer_class.__name__}"
    return AdapterTrainer
