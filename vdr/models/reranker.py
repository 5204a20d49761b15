"""ONE loader for the reranker (a sentence-transformers CrossEncoder), with the same checks as the embedder's.

A CrossEncoder folder or Hub id loads as it is; any other checkpoint (a sentence-transformers embedder, such as the
cpu profile's MiniLM) becomes a CrossEncoder with a fresh one-logit head. `keep_first_layers` makes a smaller,
faster reranker from the first n Transformer layers. Errors are FieldErrors (vdr/errors.py) naming `reranker`
(`reranker (the base of the adapter <name>)` for an adapter's base model) or `num_layers`.
"""

from __future__ import annotations

from pathlib import Path

from vdr.errors import FieldError, fields_under
from vdr.models.adapters import load_adapter
from vdr.models.loading import adapter_base, base_of_adapter, check_loaded, check_token_limit
from vdr.models.sources import check_model_source, from_hub, loading_kwargs, resolve_model


def load_reranker(name: str, models=None, *, max_length: int | None = None):
    """A CrossEncoder. A saved reranker (a CrossEncoder folder or Hub id, such as a multimodal reranker with
    its any-to-any Transformer + LogitScore) loads as it is. A plain encoder checkpoint (a sentence-transformers
    or transformers folder) gets a fresh scoring head: mean pooling over the (query, page) tokens, then one
    linear unit. Mean pooling, not BERT's [CLS] pooler: the pooler of a sentence-embedding checkpoint is
    untrained, and a classifier on it barely learns from hard negatives. Errors name the field `reranker`."""
    with fields_under("reranker"):
        return _load_reranker(name, models, max_length)


def _load_reranker(name: str, models, max_length: int | None):
    from sentence_transformers import CrossEncoder

    kwargs = loading_kwargs(models) if models is not None else {}
    model_kwargs, processor_kwargs = kwargs.get("model_kwargs") or None, kwargs.get("processor_kwargs") or None
    path = resolve_model(name)
    check_model_source(name, path)
    if (base := adapter_base(path)) is not None:
        with base_of_adapter(name):
            model = _load_reranker(base, models, max_length)
        load_adapter(model, Path(path))
        return model
    if not Path(path).is_dir() or _is_cross_encoder(Path(path)):
        with from_hub(name, path):
            model = CrossEncoder(
                path, num_labels=1, max_length=max_length, model_kwargs=model_kwargs, processor_kwargs=processor_kwargs
            )
    else:
        model = _mean_pooling_cross_encoder(path, max_length, model_kwargs)
    check_loaded(model, models, kwargs)
    if max_length:
        check_token_limit(model, max_length, what="max_length")
    return model


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
    drop_pooler(transformer)
    width = transformer.get_embedding_dimension()
    head = Dense(width, 1, activation_function=torch.nn.Identity(), module_output_name="scores")
    return CrossEncoder(modules=[transformer, Pooling(width, "mean"), head])


def drop_pooler(transformer) -> None:
    """BERT's [CLS] pooler goes unused under mean pooling (and DDP wants every weight used): drop it, and record in
    the module's saved config (sentence_bert_config.json `model_kwargs`) that the model is built without one, so
    that the saved reranker loads anywhere (`CrossEncoder(folder)`, this loader) with no weight newly initialized."""
    import inspect

    network = transformer.model
    if getattr(network, "pooler", None) is None:
        return
    network.pooler = None
    if "add_pooling_layer" in inspect.signature(type(network).__init__).parameters:
        transformer.model_kwargs = {"add_pooling_layer": False}
        transformer.config_keys = [*transformer.config_keys, "model_kwargs"]  # saved with the module's config


def keep_first_layers(model, num_layers: int | None) -> None:
    """Keep only the first `num_layers` layers of the model's Transformer stack (the `layer` or `layers` list of its
    encoder or decoder), in place, and record it in its config so that the saved model loads as it is. A smaller
    model from the same checkpoint: each kept layer starts from its trained weights. None keeps them all. A model
    it cannot cut: FieldError naming `num_layers`."""
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
        raise FieldError(
            "num_layers", f"found no list of Transformer layers in {type(network).__name__}; set it to null"
        )
    name, layers = max(stacks, key=lambda stack: len(stack[1]))  # the text stack, not a smaller vision tower's
    if num_layers > len(layers):
        raise FieldError(
            "num_layers", f"{num_layers} layers asked, the model has {len(layers)} ({name}); lower it or null"
        )
    del layers[num_layers:]
    config = network.config
    for field in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(config, field):
            setattr(config, field, num_layers)
            break
