"""Profiles are composed from conf/ by DVC's Hydra integration; the committed params.yaml is the cpu one,
byte for byte as `dvc exp run` writes it, so an experiment never rewrites a file the user did not edit."""

import os

import pytest
from dvc.config import Config
from dvc.utils.hydra import compose_and_dump

from tests.support.repo import REPO
from vdr.config.params import Params
from vdr.config.profiles import compose, compose_text, main

REGENERATE = "python -m vdr.config.profiles cpu --write params.yaml"


def test_committed_params_are_byte_for_byte_what_dvc_exp_run_writes(tmp_path):
    # What `dvc exp run` does before it runs anything (dvc/repo/experiments/queue/base.py, _update_params):
    # with [hydra] enabled and no -S, it calls compose_and_dump on params.yaml with no overrides and the
    # config_dir, config_name and plugins_path defaults (.dvc/config sets none of them).
    hydra = Config(dvc_dir=str(REPO / ".dvc"))["hydra"]
    assert hydra["enabled"] and not {"config_dir", "config_module", "config_name", "plugins_path"} & set(hydra)
    written = tmp_path / "params.yaml"
    compose_and_dump(written, os.path.join(REPO, "conf"), None, "config", os.path.join(REPO, ""), [])
    assert written.read_bytes() == (REPO / "params.yaml").read_bytes(), (
        f"params.yaml is not what `dvc exp run` writes from conf/, so an experiment would rewrite it; "
        f"regenerate it with `{REGENERATE}` (and put any explanation in conf/ as a comment)"
    )


def test_the_tool_composes_what_dvc_composes():
    committed = (REPO / "params.yaml").read_text(encoding="utf-8")
    assert compose_text(None) == compose_text("cpu") == committed


def test_dvc_composes_from_conf():
    assert "enabled = true" in (REPO / ".dvc" / "config").read_text().split("[hydra]", 1)[1]
    for name in ("cpu", "blog"):
        assert (REPO / "conf" / "profile" / f"{name}.yaml").read_text().startswith("# @package _global_\n")


@pytest.mark.parametrize("profile", ["cpu", "blog"])
def test_every_profile_validates(profile):
    params = Params.model_validate(compose(profile))
    assert params.profile_name == profile


def test_overrides_apply_on_top_of_a_profile():
    composed = compose("blog", ["train_embedder.learning_rate=1e-5", "mine.source=mined"])
    assert composed["train_embedder"]["learning_rate"] == 1e-5 and composed["mine"]["source"] == "mined"
    assert Params.model_validate(composed).models.embedder == "Qwen/Qwen3-VL-Embedding-2B"


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        compose("gpu")


def test_local_dataset_is_an_override_of_the_blog_profile():
    composed = compose("blog", ["fetch.source=local", "+fetch.path=/data/vdr", "~fetch.dataset", "~fetch.revision"])
    fetch = Params.model_validate(composed).fetch
    assert fetch.source == "local" and fetch.path == "/data/vdr" and fetch.positive_column == "image"


def test_check_is_byte_exact_and_write_regenerates(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    committed = (REPO / "params.yaml").read_bytes()
    # the same values with a comment: equal as YAML, but `dvc exp run` would rewrite the file
    params.write_bytes(b"# a comment\n" + committed)
    assert main(["cpu", "--check", str(params)]) == 1
    assert f"python -m vdr.config.profiles cpu --write {params}" in capsys.readouterr().err
    assert main(["cpu", "--write", str(params)]) == 0
    assert params.read_bytes() == committed
    assert main(["cpu", "--check", str(params)]) == 0


def test_printing_mode_prints_the_composition(capsys):
    assert main(["blog", "train_embedder.learning_rate=1e-5"]) == 0
    assert capsys.readouterr().out == compose_text("blog", ["train_embedder.learning_rate=1e-5"])
