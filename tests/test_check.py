"""The check stage: the whole params.yaml and the environment, before any stage's outputs are removed."""

import json

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
