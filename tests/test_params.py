import pytest
import yaml

from tests.support.repo import REPO
from vdr.config.params import load_params
from vdr.config.section import ParamsError


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
        (lambda p: p["train_embedder"].update(eval_steps=2.5), "train_embedder: eval_steps: 2.5 is neither a whole"),
        (lambda p: p["train_reranker"].update(logging_steps=1.5), "train_reranker: logging_steps: 1.5 is neither"),
        (lambda p: p["encode"].update(bf16="fast"), "encode.bf16"),
        (lambda p: p["train_embedder"].update(epochs=float("inf")), "train_embedder.epochs: must be a finite number"),
        (lambda p: p["train_reranker"].update(epochs=5000), "train_reranker.epochs"),
        (lambda p: p["train_reranker"].update(learning_rate=float("nan")), "train_reranker.learning_rate: must be a"),
        (lambda p: p.update(trian_embedder={"epochs": 2}), "trian_embedder: unknown key"),
        (lambda p: p["models"].update(page_input="pdf"), "models.page_input"),
        (lambda p: p["models"].update(embedder=""), "models.embedder"),
        (
            lambda p: p["models"]["model_kwargs"].update(attn_implementation="fast"),
            "models.model_kwargs.attn_implementation",
        ),
        (lambda p: p["models"]["model_kwargs"].update(dtype="int4"), "models.model_kwargs.dtype"),
        (lambda p: p["fetch"].update(packages=[]), "fetch.packages"),
        (lambda p: p["fetch"].update(min_summary_chars=300), "min_summary_chars must be <= max_summary_chars"),
        (lambda p: p["fetch"].update(seed="abc"), "fetch.seed"),
        (lambda p: p["render"].update(shard_size=0), "render.shard_size"),
        (lambda p: p["render"].update(workers=0), "render.workers"),
        (lambda p: p["mine"].update(num_negatives=0), "mine.num_negatives"),
        (lambda p: p["mine"].update(sampling_strategy="best"), "mine.sampling_strategy"),
        (lambda p: p["mine_reranker"].update(embedder="tuned"), "mine_reranker.embedder"),
        (lambda p: p["train_embedder"].update(batch_size=1), "train_embedder.batch_size"),
        (lambda p: p["train_embedder"].update(warmup_ratio=1.5), "train_embedder.warmup_ratio"),
        (lambda p: p["train_embedder"].update(dropout=1.0), "train_embedder.dropout"),
        (lambda p: p["train_reranker"].update(dropout=-0.1), "train_reranker.dropout"),
        (lambda p: p["train_embedder"].update(max_seq_length=4), "train_embedder.max_seq_length"),
        (lambda p: p["train_embedder"].update(batch_sampler="random"), "train_embedder.batch_sampler"),
        (lambda p: p["train_embedder"].update(num_processes=0), "train_embedder.num_processes"),
        (lambda p: p["train_reranker"].update(pos_weight=0), "train_reranker.pos_weight"),
        (lambda p: p["train_reranker"].update(eval_queries=-1), "train_reranker.eval_queries"),
        (
            lambda p: p["train_reranker"].update(gradient_accumulation_steps=0),
            "train_reranker.gradient_accumulation_steps",
        ),
        (lambda p: p["evaluate"].update(top_k=0), "evaluate.top_k"),
        (lambda p: p["evaluate"].update(top_k=-5), "evaluate.top_k"),
        (lambda p: p["evaluate"].update(dims=[0]), "evaluate"),
        (lambda p: p["evaluate"].update(fusion_weight=1.5), "evaluate.fusion_weight"),
        (lambda p: p["publish"].update(truncate_dim=0), "publish.truncate_dim"),
        (lambda p: p["publish"].update(push="yes please"), "publish.push"),
        (
            lambda p: p["train_reranker"].update(
                num_layers=2, lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "merge": False}
            ),
            "train_reranker: num_layers, lora: a LoRA adapter is saved without its base model",
        ),
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


def image_pages(params):
    params["models"]["page_input"] = "image"
    params["train_multivector"]["document_length"] = 128


def late_interaction(enabled, mutate):
    """`mutate`, then train_multivector.enabled set to `enabled` (None: no train_multivector section at all)."""

    def mutated(params):
        mutate(params)
        if enabled is None:
            params["train_multivector"] = None
        else:
            params["train_multivector"]["enabled"] = enabled

    return mutated


@pytest.mark.parametrize(
    "mutate, culprit",
    [
        (image_pages, "train_multivector.document_length: pages are read as images (models.page_input: image)"),
        (
            lambda p: p["train_multivector"].update(batch_size=32, mini_batch_size=64),
            "train_multivector: mini_batch_size: 64 exceeds batch_size 32",
        ),
    ],
    ids=["image-pages-cut", "mini-batch-above-batch"],
)
def test_late_interaction_cross_checks_name_the_key_only_when_it_is_on(tmp_path, mutate, culprit):
    """Combinations the multi-vector model would only refuse (or waste time on) minutes into training."""
    load_params(write(tmp_path, late_interaction(False, mutate)))  # late interaction off: nothing to check
    load_params(write(tmp_path, late_interaction(None, mutate)))
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, late_interaction(True, mutate)))
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


def number_keys(params: dict, prefix: str = ""):
    """The dotted key of every number in `params` (booleans aside), and of every list of whole numbers."""
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from number_keys(value, f"{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name
        elif isinstance(value, list) and value and all(type(item) is int for item in value):
            yield name


def set_key(params: dict, key: str, value) -> None:
    *sections, last = key.split(".")
    for section in sections:
        params = params[section]
    params[last] = value


COMMITTED = yaml.safe_load((REPO / "params.yaml").read_text())


def committed_value(key: str):
    value = COMMITTED
    for part in key.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("key", list(number_keys(COMMITTED)))
def test_a_boolean_where_a_number_is_expected_is_refused_naming_the_key(tmp_path, key):
    """Was SILENT: pydantic's lax mode read `epochs: true` and `seed: true` as 1. Every number of params.yaml, each
    integer and float key, and a list of numbers too."""
    is_list = isinstance(committed_value(key), list)
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, lambda p: set_key(p, key, [True] if is_list else True)))
    assert f"{key}{'.0' if is_list else ''}: must be a number, not the boolean true" in str(error.value)


def test_floats_still_take_integers_and_integers_still_take_whole_floats(tmp_path):
    def numbers(params):
        params["train_embedder"].update(epochs=2, warmup_ratio=0)
        params["search"]["max_memory_mb"] = 512
        params["mine"]["batch_size"] = 64.0

    params = load_params(write(tmp_path, numbers))
    assert (params.train_embedder.epochs, params.train_embedder.warmup_ratio, params.search.max_memory_mb) == (
        2,
        0,
        512,
    )
    assert type(params.mine.batch_size) is int and params.mine.batch_size == 64
    with pytest.raises(ParamsError, match="train_reranker.save_steps: must be a number, not the boolean false"):
        load_params(write(tmp_path, lambda p: p["train_reranker"].update(save_steps=False)))  # an int | float union
