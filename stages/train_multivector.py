"""train_multivector: finetune a late-interaction (multi-vector, ColBERT-style) model on (query, positive page, hard
negative) triplets.

    python stages/train_multivector.py   (run by `dvc repro train_multivector`)

models.embedder becomes a sentence-transformers MultiVectorEncoder: one vector per token, its width brought to
train_multivector.projection_dim by a fresh linear projection drawn from train_multivector.seed
(vdr/models/multivector.py),
queries and pages scored by MaxSim. CachedMultiVectorMultipleNegativesRankingLoss (train_multivector.mini_batch_size
inputs embedded at a time; null: the plain MultiVectorMultipleNegativesRankingLoss) over in-batch and mined hard
negatives, MultiVectorEncoderTrainer, training curves through DVCLive (dvclive/train_multivector). The fresh
projection learns at its own rate (train_multivector.projection_learning_rate, the trainer's
learning_rate_mapping), the rest of the model at train_multivector.learning_rate; gradients are clipped at
train_multivector.max_grad_norm. Pages are texts or, when the mined columns hold image bytes, page screenshots. With
train_multivector.eval_steps set, a MaxSim retrieval evaluator on the held-out set (data/pages/eval, pages read as
every stage reads them: vdr/data/evalset.py) runs before, during and after training. Writes the finetuned model to
models/multivector. With train_multivector.lora set, LoRA adapters train instead of the model's weights (the
projection still trains) and models/multivector holds the adapter and the projection (lora.merge: the merged model).
With train_multivector.save_steps set it saves checkpoints to models/checkpoints/multivector, and a killed run
resumes from the last one (vdr/training/checkpoints.py, vdr/training/trainer.py). With late interaction off (the cpu
default, train_multivector.enabled: false) the stage only writes its outputs with a README.md saying so, in about a
second: the libraries that train are imported only when it is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.config.models import Models
from vdr.config.section import load_sections
from vdr.config.training import TrainMultivector
from vdr.data.evalset import EvalSet
from vdr.errors import fields_as
from vdr.io.files import atomic_path, write_json
from vdr.stage import parse_args, stage_process


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    mined: Path = Path("data/mined")
    eval_dataset: Path = Path("data/pages/eval")
    output: Path = Path("models/multivector")
    checkpoints: Path = Path("models/checkpoints/multivector")
    live: Path = Path("dvclive/train_multivector")


OFF = (
    "Late interaction is off in this run (train_multivector.enabled: false); "
    "`dvc exp run -S train_multivector.enabled=true` trains it.\n"
)


CHECKPOINTS_NOTE = (  # true whether late interaction is on or off: the folder persists from one run to the next
    "train_multivector keeps its checkpoints here while it trains (train_multivector.save_steps), so that a killed "
    "run resumes; with late interaction off (train_multivector.enabled: false) it trains nothing and keeps none.\n"
)


def write_off(paths: Paths) -> None:
    """Late interaction is off in this run: the stage's outputs hold only a note saying so (no model, no curves, no
    checkpoint; DVC warns about an empty folder), so DVC records them and nothing else runs."""
    for folder in (paths.output, paths.live / "plots"):
        with atomic_path(folder) as temporary:
            temporary.mkdir(parents=True)
            (temporary / "README.md").write_text(OFF)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    (paths.checkpoints / "README.md").write_text(CHECKPOINTS_NOTE)
    write_json(paths.live / "metrics.json", {})


def retrieval_evaluator(evalset: EvalSet, page_input: str, name: str, batch_size: int):
    """The held-out set as sentence-transformers' MaxSim evaluator sees it (vdr/data/evalset.py evaluator_inputs)."""
    from sentence_transformers.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator

    return MultiVectorInformationRetrievalEvaluator(
        **evalset.evaluator_inputs(page_input),
        batch_size=batch_size,
        name=name,
        show_progress_bar=False,
        write_csv=False,
    )


def main(paths: Paths) -> None:
    # 1. Parameters: with late interaction off, empty outputs and nothing else (the training libraries take seconds
    #    to import, so they are imported below, only when it is on)
    params = load_sections(paths.params, models=Models, train_multivector=TrainMultivector | None)
    config = params.late_interaction
    if config is None:
        print("late interaction is off (train_multivector.enabled: false): nothing to train")
        write_off(paths)
        return
    from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
    from sentence_transformers.multi_vector_encoder.losses import (
        CachedMultiVectorMultipleNegativesRankingLoss,
        MultiVectorMultipleNegativesRankingLoss,
    )
    from transformers import set_seed

    from vdr.models.multivector import load_multivector, projection_parameters
    from vdr.training.lora import prepare
    from vdr.training.trainer import (
        BATCH_SAMPLERS,
        read_triplets,
        resumable,
        save,
        train,
        training_arguments,
    )

    # 2. The base model as a multi-vector model with a fresh, seeded projection, at train_multivector.dropout; LoRA
    #    adapters and a frozen vision tower when asked (vdr/training/lora.py); resume if a run with the same params,
    #    data and code was killed
    names = {  # the model is models.embedder, its token limits are this section's
        "embedder": "models.embedder",
        "query_length": "train_multivector.query_length",
        "document_length": "train_multivector.document_length",
    }
    with fields_as(names):
        model = load_multivector(
            params.models.embedder,
            params.models,
            projection_dim=config.projection_dim,
            seed=config.seed,
            query_length=config.query_length,
            document_length=config.document_length,
        )
    print(f"multi-vector model: {' -> '.join(type(m).__name__ for m in model)}, {model.get_embedding_dimension()}-d")
    set_seed(config.seed)  # LoRA adapters are drawn before the trainer seeds anything
    adapter = prepare(model, config, params.models.embedder, "train_multivector")
    data = [paths.mined / "train.parquet"] + ([paths.eval_dataset] if config.eval_steps is not None else [])
    checkpointing = resumable(
        paths.checkpoints, paths.live, {"models": params.models, "train_multivector": config}, data, __file__
    )

    # 3. Triplets: query, positive page, the hardest mined negative; the held-out evaluator if asked
    dataset = read_triplets(paths.mined / "train.parquet", config.max_train_samples)
    evaluator = None
    if config.eval_steps is not None:
        evaluator = retrieval_evaluator(
            EvalSet.load(paths.eval_dataset),
            params.models.page_input,
            config.evaluator_name,
            config.evaluator_batch_size,
        )
        print(f"before training: {evaluator(model)}")

    # 4. Loss: MaxSim over in-batch and hard negatives, cached (GradCache) when mini_batch_size is set
    if config.mini_batch_size is not None:
        loss = CachedMultiVectorMultipleNegativesRankingLoss(
            model, scale=config.scale, mini_batch_size=config.mini_batch_size
        )
    else:
        loss = MultiVectorMultipleNegativesRankingLoss(model, scale=config.scale)

    # 5. Training arguments: the shared ones (vdr/training/trainer.py), the batch sampler, gradient clipping and the
    #    projection's own learning rate (an optimizer parameter group of its own)
    rates = {}
    if config.projection_learning_rate is not None:
        rates[projection_parameters(model)] = config.projection_learning_rate
    args = training_arguments(
        MultiVectorEncoderTrainingArguments,
        config,
        paths.checkpoints,
        evaluator,
        batch_sampler=BATCH_SAMPLERS[config.batch_sampler],
        max_grad_norm=config.max_grad_norm,
        learning_rate_mapping=rates,
    )

    # 6. Train with DVCLive curves, then save the finetuned model (or its adapter) atomically
    train(MultiVectorEncoderTrainer, model, args, dataset, loss, evaluator, checkpointing)
    if evaluator is not None:
        print(f"after training: {evaluator(model)}")
    save(model, paths.output, checkpointing, adapter)


if __name__ == "__main__":
    with stage_process("train_multivector"):
        main(parse_args(Paths, __doc__))
