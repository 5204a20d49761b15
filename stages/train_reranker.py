"""train_reranker: a CrossEncoder trained on (query, page, label) pairs from the reranker's mined negatives.

    python stages/train_reranker.py   (run by `dvc repro train_reranker`)

With train_reranker.num_processes > 1 it relaunches itself under torchrun (one process per GPU).

Starts from models.reranker (for the `cpu` profile the MiniLM weights, given a fresh scoring head of
mean pooling + one linear unit; a multimodal reranker such as Qwen3-VL-Reranker keeps its any-to-any
Transformer + LogitScore). The negatives come from data/mined_reranker: mined with the finetuned
embedder (mine_reranker.embedder), i.e. the pages the reranker will meet in that embedder's top-k.
BinaryCrossEntropyLoss (pos_weight) on positives (label 1) and negatives (label 0); the last
eval_queries mined rows are held out and scored by CrossEncoderRerankingEvaluator during training.
Curves through DVCLive (dvclive/train_reranker). Pages are texts or, when the mined columns hold image
bytes, page screenshots: the pairs are then (query text, page image). Writes models/reranker: with
train_reranker.lora set, the LoRA adapter and the scoring head only (lora.merge: the merged model); see
train_reranker.freeze_vision too (vdr/training/lora.py). With
train_reranker.save_steps set, a killed run resumes from its last checkpoint (vdr/training/checkpoints.py,
vdr/training/trainer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from transformers import set_seed

from vdr.config.models import Models
from vdr.config.section import load_sections
from vdr.config.training import TrainReranker
from vdr.errors import fields_under
from vdr.io.images import decode_image
from vdr.io.tables import is_binary, read_table, require_columns
from vdr.models.reranker import keep_first_layers, load_reranker
from vdr.stage import parse_args, stage_process
from vdr.training.launch import relaunch_distributed
from vdr.training.lora import prepare
from vdr.training.pairs import labelled_pairs
from vdr.training.trainer import resumable, save, train, training_arguments


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    mined: Path = Path("data/mined_reranker")
    output: Path = Path("models/reranker")
    checkpoints: Path = Path("models/checkpoints/reranker")
    live: Path = Path("dvclive/train_reranker")


def reranking_samples(table, negatives_per_positive: int) -> list[dict]:
    """CrossEncoderRerankingEvaluator samples: each held-out query with its positive and its mined negatives."""
    negative_columns = [f"negative_{j}" for j in range(1, negatives_per_positive + 1)]
    as_page = decode_image if is_binary(table.schema.field("positive").type) else (lambda value: value)
    return [
        {
            "query": row["query"],
            "positive": [as_page(row["positive"])],
            "negative": [as_page(row[c]) for c in negative_columns],
        }
        for row in table.to_pylist()
    ]


def main(paths: Paths) -> None:
    # 1. Parameters and the base reranker at train_reranker.dropout, with LoRA adapters and a frozen vision tower
    #    when asked (vdr/training/lora.py); resume if a run with the same params, data and code was killed
    params = load_sections(paths.params, models=Models, train_reranker=TrainReranker)
    config = params.train_reranker
    relaunch_distributed(config, "train_reranker")
    mined = paths.mined / "train.parquet"
    checkpointing = resumable(
        paths.checkpoints, paths.live, {"models": params.models, "train_reranker": config}, [mined], __file__
    )
    set_seed(config.seed)  # the fresh scoring head is drawn at load time, before the trainer seeds anything
    with fields_under("models"):
        model = load_reranker(params.models.reranker, params.models, max_length=config.max_length)
    with fields_under("train_reranker"):
        keep_first_layers(model, config.num_layers)  # train_reranker.num_layers: a smaller reranker, same checkpoint
    adapter = prepare(model, config, params.models.reranker, "train_reranker")

    # 2. Labelled pairs from the mined negatives; the last eval_queries rows are held out for the evaluator
    table = read_table(mined)
    negative_columns = [f"negative_{j}" for j in range(1, config.negatives_per_positive + 1)]
    require_columns(
        table,
        ["query", "positive", *negative_columns],
        f"{mined} (is train_reranker.negatives_per_positive <= mine_reranker.num_negatives?)",
    )
    if config.eval_queries >= table.num_rows:
        raise ValueError(
            f"train_reranker.eval_queries: {config.eval_queries} held out, "
            f"but {mined} has only {table.num_rows} rows; lower it"
        )
    held_out = table.slice(table.num_rows - config.eval_queries)
    training = table.slice(0, table.num_rows - config.eval_queries)
    if config.max_train_queries is not None:
        training = training.slice(0, config.max_train_queries)
    dataset = labelled_pairs(training, config.negatives_per_positive)
    print(
        f"training on {len(dataset)} (query, page, label) pairs; "
        f"{held_out.num_rows} queries held out for the evaluator"
    )

    # 3. Loss and evaluator
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(config.pos_weight))
    evaluator = None
    if config.eval_queries:
        samples = reranking_samples(held_out, config.negatives_per_positive)
        evaluator = CrossEncoderRerankingEvaluator(samples, name="held_out", batch_size=config.batch_size)

    # 4. Training arguments: the shared ones (vdr/training/trainer.py), gradient accumulation, and DDP without unused
    # weights
    args = training_arguments(
        CrossEncoderTrainingArguments,
        config,
        paths.checkpoints,
        evaluator,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        ddp_find_unused_parameters=False,  # with several processes: every parameter takes part in each step
    )

    # 5. Train with DVCLive curves, then save the reranker (or its adapter) atomically (main process)
    trainer = train(CrossEncoderTrainer, model, args, dataset, loss, evaluator, checkpointing)
    if evaluator is not None and not config.eval_steps:
        trainer.evaluate()  # no evaluation during training: score the held-out queries once, at the end
    save(model, paths.output, checkpointing, adapter)


if __name__ == "__main__":
    with stage_process("train_reranker"):
        main(parse_args(Paths, __doc__))
