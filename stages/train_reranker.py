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
bytes, page screenshots: the pairs are then (query text, page image). Writes models/reranker. With
train_reranker.save_steps set, a killed run resumes from its last checkpoint (vdr/checkpoints.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from datasets import Dataset, Features, Image, Value
from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from transformers import set_seed

from vdr.checkpoints import Checkpoints
from vdr.launch import is_main_process, relaunch_distributed
from vdr.models import load_reranker, loading_kwargs
from vdr.pages import decode_image
from vdr.params import load_params
from vdr.shards import atomic_path, is_binary, read_table, require_columns


def labelled_pairs(table, negatives_per_positive: int) -> Dataset:
    """(query, positive, 1) and (query, negative_j, 0) for j = 1..negatives_per_positive."""
    negative_columns = [f"negative_{j}" for j in range(1, negatives_per_positive + 1)]
    images = is_binary(table.schema.field("positive").type)
    as_page = (lambda value: {"bytes": value, "path": None}) if images else (lambda value: value)
    queries, pages, labels = [], [], []
    for row in table.to_pylist():
        queries.append(row["query"]), pages.append(as_page(row["positive"])), labels.append(1.0)
        for column in negative_columns:
            queries.append(row["query"]), pages.append(as_page(row[column])), labels.append(0.0)
    features = Features({"query": Value("string"), "page": Image() if images else Value("string"), "label": Value("float32")})
    return Dataset.from_dict({"query": queries, "page": pages, "label": labels}, features=features)


def reranking_samples(table, negatives_per_positive: int) -> list[dict]:
    """CrossEncoderRerankingEvaluator samples: each held-out query with its positive and its mined negatives."""
    negative_columns = [f"negative_{j}" for j in range(1, negatives_per_positive + 1)]
    as_page = decode_image if is_binary(table.schema.field("positive").type) else (lambda value: value)
    return [
        {"query": row["query"], "positive": [as_page(row["positive"])], "negative": [as_page(row[c]) for c in negative_columns]}
        for row in table.to_pylist()
    ]


def main(params_path: str, mined: Path, output: Path, checkpoints: Path, live_dir: Path) -> None:
    # 1. Parameters and the base reranker
    params = load_params(params_path)
    train = params.train_reranker
    relaunch_distributed(train.num_processes)
    checkpointing = Checkpoints(checkpoints, live_dir, {"models": params.models, "train_reranker": train}, [mined / "train.parquet", Path(__file__)])  # resume if killed
    set_seed(train.seed)  # the fresh classification head is drawn at load time, before the trainer seeds anything
    model = load_reranker(params.models.reranker, train.max_length, **loading_kwargs(params.models))

    # 2. Labelled pairs from the mined negatives; the last eval_queries rows are held out for the evaluator
    table = read_table(mined / "train.parquet")
    negative_columns = [f"negative_{j}" for j in range(1, train.negatives_per_positive + 1)]
    require_columns(table, ["query", "positive", *negative_columns], mined / "train.parquet (is train_reranker.negatives_per_positive <= mine_reranker.num_negatives?)")
    if train.eval_queries >= table.num_rows:
        raise ValueError(f"train_reranker.eval_queries: {train.eval_queries} held out, but {mined / 'train.parquet'} has only {table.num_rows} rows; lower it")
    held_out = table.slice(table.num_rows - train.eval_queries)
    training = table.slice(0, table.num_rows - train.eval_queries)
    dataset = labelled_pairs(training if train.max_train_queries is None else training.slice(0, train.max_train_queries), train.negatives_per_positive)
    print(f"training on {len(dataset)} (query, page, label) pairs; {held_out.num_rows} queries held out for the evaluator")

    # 3. Loss and evaluator
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(train.pos_weight))
    evaluator = CrossEncoderRerankingEvaluator(reranking_samples(held_out, train.negatives_per_positive), name="held_out", batch_size=train.batch_size) if train.eval_queries else None

    # 4. Training arguments
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        learning_rate=train.learning_rate,
        warmup_ratio=train.warmup_ratio,
        bf16=train.bf16,
        use_cpu=not torch.cuda.is_available(),  # bf16 autocast on a CPU needs this said explicitly
        logging_steps=1,
        eval_strategy="steps" if evaluator and train.eval_steps else "no",
        eval_steps=train.eval_steps,
        save_strategy="no" if train.save_steps is None else "steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        seed=train.seed,
        data_seed=train.seed,
        report_to="none",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # with several processes: every parameter takes part in each step
    )

    # 5. Train with DVCLive curves (from the main process only)
    callbacks = checkpointing.callbacks() if is_main_process() else []
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=checkpointing.resume)
    if evaluator and not train.eval_steps:
        trainer.evaluate()  # no evaluation during training: score the held-out queries once, at the end

    # 6. Save atomically (from the main process only)
    if not is_main_process():
        return
    with atomic_path(output) as temporary:
        model.save_pretrained(str(temporary), create_model_card=False)  # its card records wall time; publish writes the card
    checkpointing.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--mined", type=Path, default=Path("data/mined_reranker"))
    parser.add_argument("--output", type=Path, default=Path("models/reranker"))
    parser.add_argument("--checkpoints", type=Path, default=Path("models/checkpoints/reranker"))
    parser.add_argument("--live", type=Path, default=Path("dvclive/train_reranker"))
    args = parser.parse_args()
    main(args.params, args.mined, args.output, args.checkpoints, args.live)
