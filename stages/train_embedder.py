"""train_embedder: finetune the base embedder on (query, positive page, hard negative) triplets.

    python stages/train_embedder.py   (run by `dvc repro train_embedder`)

With train_embedder.num_processes > 1 it relaunches itself under torchrun (one process per GPU).

MatryoshkaLoss over CachedMultipleNegativesRankingLoss, SentenceTransformerTrainer, training
curves through DVCLive (dvclive/train_embedder). Writes the finetuned model to models/embedder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datasets import Dataset
from dvclive import Live
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.losses import CachedMultipleNegativesRankingLoss, MatryoshkaLoss
from sentence_transformers.training_args import BatchSamplers
from transformers.integrations import DVCLiveCallback

from vdr.launch import is_main_process, relaunch_distributed
from vdr.models import load_embedder
from vdr.params import load_params
from vdr.shards import atomic_path, read_table, require_columns


def main(params_path: str, mined: Path, output: Path, checkpoints: Path, live_dir: Path) -> None:
    # 1. Parameters and the base model
    params = load_params(params_path)
    train = params.train_embedder
    relaunch_distributed(train.num_processes)
    model = load_embedder(params.models.embedder, train.max_seq_length)
    dimension = model.get_embedding_dimension()
    if train.matryoshka_dims[0] > dimension:
        raise ValueError(f"train_embedder.matryoshka_dims: {train.matryoshka_dims[0]} exceeds the model's embedding size {dimension}")

    # 2. Triplets: query, positive page, the hardest mined negative
    table = read_table(mined / "train.parquet")
    require_columns(table, ["query", "positive", "negative_1"], mined / "train.parquet")
    table = table.slice(0, train.max_train_samples)
    dataset = Dataset.from_dict(
        {"anchor": table["query"].to_pylist(), "positive": table["positive"].to_pylist(), "negative": table["negative_1"].to_pylist()}
    )
    print(f"training on {len(dataset)} triplets")

    # 3. Loss: in-batch and hard negatives, at every Matryoshka dimension
    inner_loss = CachedMultipleNegativesRankingLoss(
        model, mini_batch_size=train.mini_batch_size, gather_across_devices=train.gather_across_devices
    )
    loss = MatryoshkaLoss(model, inner_loss, matryoshka_dims=train.matryoshka_dims)

    # 4. Training arguments
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size,
        learning_rate=train.learning_rate,
        warmup_ratio=train.warmup_ratio,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        logging_steps=1,
        save_strategy="no",
        seed=train.seed,
        data_seed=train.seed,
        report_to="none",  # DVCLive is attached below, with its own folder
        dataloader_num_workers=0,
    )

    # 5. Train, logging curves with DVCLive (from the main process only)
    callbacks = [DVCLiveCallback(live=Live(str(live_dir), save_dvc_exp=False, dvcyaml=None))] if is_main_process() else []
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks)
    trainer.train()

    # 6. Save the finetuned model atomically (from the main process only)
    if not is_main_process():
        return
    with atomic_path(output) as temporary:
        model.save_pretrained(str(temporary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--mined", type=Path, default=Path("data/mined"))
    parser.add_argument("--output", type=Path, default=Path("models/embedder"))
    parser.add_argument("--checkpoints", type=Path, default=Path("models/checkpoints/embedder"))
    parser.add_argument("--live", type=Path, default=Path("dvclive/train_embedder"))
    args = parser.parse_args()
    main(args.params, args.mined, args.output, args.checkpoints, args.live)
