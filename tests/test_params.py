import pytest
import yaml

from tests.conftest import REPO
from vdr.params import ParamsError, load_params


def write(tmp_path, mutate):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_committed_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.train_embedder.matryoshka_dims[0] == 384


@pytest.mark.parametrize(
    "mutate, culprit",
    [
        (lambda p: p["train_embedder"].update(learning_rat=1e-4), "train_embedder.learning_rat"),
        (lambda p: p["train_embedder"].update(learning_rate="fast"), "train_embedder.learning_rate"),
        (lambda p: p["train_embedder"].update(batch_size=0), "train_embedder.batch_size"),
        (lambda p: p["train_embedder"].update(matryoshka_dims=[64, 384]), "train_embedder"),
        (lambda p: p["render"].update(dpi=5), "render.dpi"),
        (lambda p: p["fetch"].update(num_eval_queries=5000), "num_eval_queries"),
        (lambda p: p["fetch"].update(source="web"), "fetch.source"),
        (lambda p: p["mine"].update(range_max=2, num_negatives=3), "range_max"),
        (lambda p: p["publish"].update(push=True, repo_id=""), "repo_id"),
        (lambda p: p.pop("evaluate"), "evaluate: missing"),
        (lambda p: p["mine"].update(relative_margin=1.5), "mine.relative_margin"),
        (lambda p: p["render"].update(on_bad_page="ignore"), "render.on_bad_page"),
        (lambda p: p["train_reranker"].update(save_steps=0), "train_reranker.save_steps"),
        (
            lambda p: p["train_reranker"].update(negatives_per_positive=5),
            "train_reranker.negatives_per_positive (5) exceeds mine_reranker.num_negatives (3)",
        ),
    ],
)
def test_bad_params_name_the_key(tmp_path, mutate, culprit):
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, mutate))
    assert culprit in str(error.value)


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ParamsError, match="params.yaml not found"):
        load_params(tmp_path / "params.yaml")


def test_a_matryoshka_dimension_larger_than_the_model_stops_the_stage_at_start(tmp_path):
    from stages.train_embedder import Paths, main

    params = write(tmp_path, lambda p: p["train_embedder"].update(matryoshka_dims=[512, 64]))
    with pytest.raises(ValueError, match="train_embedder.matryoshka_dims: 512 exceeds the model's embedding size 384"):
        main(
            Paths(
                params=params,
                mined=tmp_path / "mined",
                output=tmp_path / "embedder",
                checkpoints=tmp_path / "checkpoints",
                live=tmp_path / "live",
                eval_dataset=tmp_path / "eval",
            )
        )
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "embedder").exists()
