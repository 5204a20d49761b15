"""Profiles are composed from conf/ by DVC's Hydra integration; the committed params.yaml is the cpu one."""

import pytest
import yaml

from tests.conftest import REPO
from vdr.params import Params
from vdr.profiles import compose


def test_committed_params_equal_the_cpu_composition():
    assert yaml.safe_load((REPO / "params.yaml").read_text()) == compose("cpu")


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
