"""A diverging run fails its stage: NaN or infinite losses, weights, embeddings, scores and parameters are refused
with a message that names what is broken and the parameter to change (vdr/models/finite.py)."""

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments
from transformers import Trainer, TrainerState

from tests.support.repo import REPO
from tests.support.training import tiny_mined
from vdr.config.params import load_params
from vdr.config.section import ParamsError
from vdr.evaluation.rerank import rerank
from vdr.models.finite import NotFiniteError, model_name, require_finite
from vdr.retrieval.encode import encode_documents, encode_queries
from vdr.training.trainer import StopWhenDiverged, divergence_hint, resumable, save, training_arguments

NAN, INF = float("nan"), float("inf")


def reranker_section(**changes):
    return load_params(REPO / "params.yaml").train_reranker.model_copy(update=changes)


def reranker_hint(**changes) -> str:
    return divergence_hint("train_reranker", reranker_section(**changes).model_dump(mode="json"))


# --- the helpers


def test_require_finite_returns_finite_values_and_names_what_is_not():
    values = np.ones((2, 3), dtype=np.float32)
    assert require_finite(values, "the x", "do y") is values
    values[1, 2] = NAN
    with pytest.raises(NotFiniteError, match=r"^the x: 1 of 6 values are NaN or infinite; do y$") as error:
        require_finite(values, "the x", "do y")
    assert isinstance(error.value, FloatingPointError) and isinstance(error.value, ValueError)
    with pytest.raises(NotFiniteError, match="2 of 3 values"):
        require_finite(torch.tensor([1.0, INF, -INF]), "a tensor", "hint")


def test_the_hint_names_the_parameters_to_blame_with_their_values():
    assert reranker_hint(learning_rate=0.9, pos_weight=1e6, bf16=True) == (
        "lower train_reranker.learning_rate (now 0.9), raise train_reranker.warmup_ratio (now 0.1), "
        "bring train_reranker.pos_weight (now 1000000.0) closer to 1 or set train_reranker.bf16: false, "
        "then rerun the stage"
    )
    embedder = load_params(REPO / "params.yaml").train_embedder.model_dump(mode="json")
    assert divergence_hint("train_embedder", embedder | {"bf16": False}) == (
        "lower train_embedder.learning_rate (now 2e-05) or raise train_embedder.warmup_ratio (now 0.1), "
        "then rerun the stage"
    )
    assert divergence_hint("train_embedder", embedder | {"bf16": True}) == (
        "lower train_embedder.learning_rate (now 2e-05), raise train_embedder.warmup_ratio (now 0.1) or set "
        "train_embedder.bf16: false, then rerun the stage"
    )


# --- training: the callback, the trainer arguments, the save


@pytest.mark.parametrize(
    "logs, found",
    [
        ({"loss": NAN, "grad_norm": 1.5, "learning_rate": 0.9}, "the logged loss is nan"),
        ({"loss": 0.7, "grad_norm": INF, "learning_rate": 0.9}, "the logged grad_norm is inf"),
        ({"loss": NAN, "grad_norm": NAN}, "the logged loss is nan and grad_norm is nan"),
        ({"train_loss": NAN, "train_runtime": 1.0}, "the logged train_loss is nan"),
    ],
)
def test_the_callback_stops_at_the_first_nan_or_infinite_log(logs, found):
    guard = StopWhenDiverged(reranker_hint(learning_rate=0.9))
    with pytest.raises(NotFiniteError) as error:
        guard.on_log(None, TrainerState(global_step=7), None, logs=logs)
    assert str(error.value) == (
        f"the training diverged at step 7: {found}; lower train_reranker.learning_rate (now 0.9), "
        "raise train_reranker.warmup_ratio (now 0.1), bring train_reranker.pos_weight (now 1.0) closer to 1 "
        "or set train_reranker.bf16: false, then rerun the stage (no model was saved)"
    )


def test_the_callback_lets_finite_logs_and_weights_pass():
    guard = StopWhenDiverged("hint")
    guard.on_log(None, TrainerState(global_step=1), None, logs={"loss": 0.0, "grad_norm": 0.0, "learning_rate": 0})
    guard.on_log(None, TrainerState(global_step=1), None, logs={"eval_ndcg@10": 0.5})
    guard.on_save(None, TrainerState(global_step=1), None, model=torch.nn.Linear(2, 1))


def test_a_checkpoint_with_nan_weights_stops_the_stage_before_it_is_marked_complete():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    with torch.no_grad():
        model[1].weight[0, 1] = NAN
    with pytest.raises(NotFiniteError, match=r"^the training diverged by step 4: 1 of 4 trainable weight tensors "):
        StopWhenDiverged("hint").on_save(None, TrainerState(global_step=4), None, model=model)


class NaNAfterTwoSteps(torch.nn.Module):
    """A model whose loss turns NaN at its third step, as a diverging run's does."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.steps = 0

    def forward(self, x, labels=None):
        self.steps += 1
        return {"loss": (self.weight * x).sum() * (NAN if self.steps >= 3 else 1.0)}


class Ones(torch.utils.data.Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": torch.ones(1), "labels": torch.ones(1)}


def test_a_nan_loss_in_a_real_trainer_loop_stops_training_at_its_step(tmp_path):
    # the stages' own trainer arguments: without logging_nan_inf_filter=False the NaN loss would be logged as 0
    args = training_arguments(
        CrossEncoderTrainingArguments, reranker_section(bf16=False, batch_size=1), tmp_path / "out"
    )
    assert args.logging_nan_inf_filter is False and args.logging_steps == 1
    logged = []

    class Record(StopWhenDiverged):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(logs)
            super().on_log(args, state, control, logs=logs, **kwargs)

    trainer = Trainer(model=NaNAfterTwoSteps(), args=args, train_dataset=Ones(), callbacks=[Record("hint")])
    with pytest.raises(NotFiniteError, match=r"^the training diverged at step 3: the logged loss is nan and "):
        trainer.train()
    assert [log["loss"] for log in logged[:2]] == [1.0, pytest.approx(1.0, abs=1e-3)] and math.isnan(logged[2]["loss"])
    assert trainer.state.global_step == 3  # stopped there, not trained to the end

    # transformers' default, logging_nan_inf_filter=True, logs the NaN loss as 0 (the mean of the steps since the
    # last log, none with logging_steps: 1): how a diverged run "read 0"; the NaN gradient norm still stops it
    logged.clear()
    args = dataclasses.replace(args, logging_nan_inf_filter=True)
    trainer = Trainer(model=NaNAfterTwoSteps(), args=args, train_dataset=Ones(), callbacks=[Record("hint")])
    with pytest.raises(NotFiniteError, match=r"^the training diverged at step 3: the logged grad_norm is nan; hint"):
        trainer.train()
    assert logged[2]["loss"] == 0.0


class Saveable(torch.nn.Linear):
    def save_pretrained(self, folder, create_model_card=True):
        Path(folder).mkdir(parents=True)
        torch.save(self.state_dict(), Path(folder) / "weights.pt")


def test_save_refuses_nan_weights_and_keeps_the_checkpoints(tmp_path):
    (tmp_path / "train.parquet").write_bytes(b"rows")
    section = reranker_section(learning_rate=0.9)
    checkpointing = resumable(
        tmp_path / "checkpoints",
        tmp_path / "live",
        {"models": load_params(REPO / "params.yaml").models, "train_reranker": section},
        [tmp_path / "train.parquet"],
        str(REPO / "stages/train_reranker.py"),
    )
    (tmp_path / "checkpoints" / "checkpoint-2").mkdir()
    model = Saveable(3, 1)
    with torch.no_grad():
        model.bias[0] = INF
    with pytest.raises(NotFiniteError) as error:
        save(model, tmp_path / "reranker", checkpointing)
    assert str(error.value) == (
        "the training diverged: 1 of 2 trainable weight tensors of the trained model hold NaN or infinite values "
        f"(the first: bias), so {tmp_path / 'reranker'} was not written; "
        "lower train_reranker.learning_rate (now 0.9), raise train_reranker.warmup_ratio (now 0.1), "
        "bring train_reranker.pos_weight (now 1.0) closer to 1 or set train_reranker.bf16: false, then rerun the stage"
    )
    assert not (tmp_path / "reranker").exists() and (tmp_path / "checkpoints" / "checkpoint-2").exists()

    with torch.no_grad():
        model.bias[0] = 0.0  # a finite model is saved and the checkpoints dropped
    save(model, tmp_path / "reranker", checkpointing)
    assert (tmp_path / "reranker" / "weights.pt").exists() and not (tmp_path / "checkpoints" / "checkpoint-2").exists()


# --- embeddings and reranker scores


class Config:
    name_or_path = "models/embedder"


class Transformer:
    config = Config()


class NaNEmbedder:
    transformers_model = Transformer()

    def encode_query(self, texts, **kwargs):
        return np.full((len(texts), 4), NAN, dtype=np.float32)

    encode_document = encode_query


class NaNReranker:
    def predict(self, pairs, **kwargs):
        return np.array([0.5] * (len(pairs) - 1) + [NAN], dtype=np.float32)


def test_nan_embeddings_name_the_model_and_the_learning_rate():
    with pytest.raises(NotFiniteError, match=r"^the query embeddings of models/embedder: 8 of 8 values are NaN "):
        encode_queries(NaNEmbedder(), ["q1", "q2"], batch_size=2)
    with pytest.raises(NotFiniteError, match="lower train_embedder.learning_rate") as error:
        encode_documents(NaNEmbedder(), ["page"], batch_size=2)
    assert str(error.value).startswith("the page embeddings of models/embedder: 4 of 4 values are NaN or infinite")


def test_nan_reranker_scores_name_the_reranker_and_the_learning_rate():
    candidates = np.array([[0, 1], [2, 1]])
    with pytest.raises(NotFiniteError) as error:
        rerank(NaNReranker(), ["q1", "q2"], ["a", "b", "c"], candidates, batch_size=2)
    assert str(error.value).startswith(
        "the scores of the reranker NaNReranker: 1 of 4 values are NaN or infinite; it was probably trained with "
        "a diverging learning rate: retrain it with a lower train_reranker.learning_rate"
    )
    assert model_name(NaNEmbedder()) == "models/embedder"


# --- parameters


def write_params(tmp_path, section: str, key: str, value) -> str:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section][key] = value
    text = yaml.safe_dump(params, sort_keys=False)
    (tmp_path / "params.yaml").write_text(text)
    return text


@pytest.mark.parametrize(
    "section, key, value, literal",
    [
        ("train_embedder", "epochs", INF, ".inf"),
        ("train_reranker", "epochs", NAN, ".nan"),
        ("train_reranker", "learning_rate", NAN, ".nan"),
        ("train_reranker", "pos_weight", INF, ".inf"),
        ("train_reranker", "save_steps", INF, ".inf"),  # a count or a fraction: one line, not one per member
        ("evaluate", "fusion_weight", -INF, "-.inf"),
        ("mine", "relative_margin", NAN, ".nan"),
    ],
)
def test_infinite_or_nan_params_are_refused_naming_the_key(tmp_path, section, key, value, literal):
    assert f"{key}: {literal}\n" in write_params(tmp_path, section, key, value)  # what YAML writes and reads
    with pytest.raises(ParamsError) as error:
        load_params(tmp_path / "params.yaml")
    assert str(error.value).splitlines()[1:] == [
        f"  {section}.{key}: must be a finite number; YAML .inf and .nan are not allowed (found {value})"
    ]


@pytest.mark.parametrize("section", ["train_embedder", "train_reranker"])
def test_epochs_have_an_upper_bound(tmp_path, section):
    write_params(tmp_path, section, "epochs", 1e20)
    with pytest.raises(ParamsError, match=rf"{section}.epochs: Input should be less than or equal to 1000"):
        load_params(tmp_path / "params.yaml")


# --- the real stage, diverging


@pytest.mark.e2e  # the stage script as a subprocess
def test_a_diverging_reranker_fails_its_stage_and_writes_no_model(tmp_path, stage_env):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train_reranker"].update(
        max_train_queries=16,
        negatives_per_positive=1,
        eval_queries=0,
        eval_steps=None,
        epochs=1,
        max_length=32,
        batch_size=4,
        learning_rate=0.9,
        pos_weight=1e30,
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tiny_mined(tmp_path / "data/mined_reranker")
    result = subprocess.run(
        [sys.executable, str(REPO / "stages/train_reranker.py")],
        cwd=tmp_path,
        env=dict(stage_env, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert (
        "the training diverged at step 1: the logged grad_norm is inf; lower train_reranker.learning_rate (now 0.9), "
        "raise train_reranker.warmup_ratio (now 0.1), bring train_reranker.pos_weight (now 1e+30) closer to 1"
    ) in output, output[-3000:]
    assert not (tmp_path / "models/reranker").exists()
    assert (tmp_path / "models/checkpoints/reranker/fingerprint.json").exists()
