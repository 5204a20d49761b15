"""train_embedder: finetune the base embedder on (query, positive page, hard negative) triplets.

    python stages/train_embedder.py   (run by `dvc repro train_embedder`)

With train_embedder.num_processes > 1 it relaunches itself under torchrun (one process per GPU).

MatryoshkaLoss over (Cached)MultipleNegativesRankingLoss, SentenceTransformerTrainer, training
curves through DVCLive (dvclive/train_embedder). Pages are texts or, when the mined columns hold image
bytes, page screenshots. With train_embedder.eval_steps set, an InformationRetrievalEvaluator on the
held-out set (data/pages/eval, pages read as every stage reads them: vdr/data/evalset.py) runs before, during
and after training, as the reference recipe does. Writes the finetuned model to models/embedder. With
train_embedder.lora set, LoRA adapters train instead of every weight and models/embedder holds the adapter only
(lora.merge: the merged model); train_embedder.freeze_vision keeps the vision tower as it is (vdr/training/lora.py).
With train_embedder.save_steps set it saves checkpoints to models/checkpoints/embedder, and a killed run
resumes from the last one (vdr/training/checkpoints.py, vdr/training/trainer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from transformers import set_seed

from vdr.config.lengths import with_measured_lengths
from vdr.config.models import Models
from vdr.config.section import load_sections
from vdr.config.training import TrainEmbedder
from vdr.data.evalset import EvalSet
from vdr.errors import fields_under
from vdr.models.loading import load_embedder
from vdr.stage import parse_args, stage_process
from vdr.training.launch import relaunch_distributed
from vdr.training.lora import prepare
from vdr.training.trainer import (
    BATCH_SAMPLERS,
    embedder_loss,
    read_triplets,
    resumable,
    save,
    train,
    training_arguments,
)


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    mined: Path = Path("data/mined")
    eval_dataset: Path = Path("data/pages/eval")
    output: Path = Path("models/embedder")
    checkpoints: Path = Path("models/checkpoints/embedder")
    live: Path = Path("dvclive/train_embedder")
    lengths: Path = Path("data/pages/lengths.json")  # train_embedder.max_seq_length auto (stages/generate.py)


def retrieval_evaluator(
    evalset: EvalSet, page_input: str, name: str, batch_size: int
) -> InformationRetrievalEvaluator:
    """The held-out set as sentence-transformers' evaluator sees it (vdr/data/evalset.py evaluator_inputs)."""
    return InformationRetrievalEvaluator(
        **evalset.evaluator_inputs(page_input), batch_size=batch_size, name=name, show_progress_bar=False
    )


def main(paths: Paths) -> None:
    # 1. Parameters and the base model at train_embedder.dropout, with LoRA adapters and a frozen vision tower when
    #    asked (vdr/training/lora.py); resume if a run with the same params, data and code was killed
    params = load_sections(paths.params, models=Models, train_embedder=TrainEmbedder)
    params = with_measured_lengths(params, paths.lengths)
    config = params.train_embedder
    relaunch_distributed(config, "train_embedder")
    set_seed(config.seed)  # LoRA adapters are drawn before the trainer seeds anything
    with fields_under("models"):
        model = load_embedder(params.models.embedder, params.models, max_seq_length=config.max_seq_length)
    dimension = model.get_embedding_dimension()
    if config.matryoshka_dims[0] > dimension:
        raise ValueError(
            f"train_embedder.matryoshka_dims: {config.matryoshka_dims[0]} "
            f"exceeds the model's embedding size {dimension}"
        )
    adapter = prepare(model, config, params.models.embedder, "train_embedder")
    data = [paths.mined / "train.parquet"] + ([paths.eval_dataset] if config.eval_steps is not None else [])
    checkpointing = resumable(
        paths.checkpoints, paths.live, {"models": params.models, "train_embedder": config}, data, __file__
    )

    # 2. Triplets: query, positive page, the hardest mined negative; the held-out evaluator if asked
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

    # 3. Loss: MatryoshkaLoss over (Cached)MultipleNegativesRankingLoss, in-batch and hard negatives at every dimension
    loss = embedder_loss(model, config)

    # 4. Training arguments: the shared ones (vdr/training/trainer.py), and the batch sampler
    args = training_arguments(
        SentenceTransformerTrainingArguments,
        config,
        paths.checkpoints,
        evaluator,
        batch_sampler=BATCH_SAMPLERS[config.batch_sampler],
    )

    # 5. Train with DVCLive curves, then save the finetuned model (or its adapter) atomically (main process)
    train(SentenceTransformerTrainer, model, args, dataset, loss, evaluator, checkpointing)
    if evaluator is not None:
        print(f"after training: {evaluator(model)}")
    save(model, paths.output, checkpointing, adapter)


if __name__ == "__main__":
    with stage_process("train_embedder"):
        main(parse_args(Paths, __doc__))
