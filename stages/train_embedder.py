"""train_embedder: finetune the base embedder on (query, positive page, hard negative) triplets.

    python stages/train_embedder.py   (run by `dvc repro train_embedder`)

With train_embedder.num_processes > 1 it relaunches itself under torchrun (one process per GPU).

MatryoshkaLoss over CachedMultipleNegativesRankingLoss, SentenceTransformerTrainer, training
curves through DVCLive (dvclive/train_embedder). Pages are texts or, when the mined columns hold image
bytes, page screenshots. With train_embedder.eval_steps set, an InformationRetrievalEvaluator on the
held-out set (data/pages/eval) runs before, during and after training, as the reference recipe does.
Writes the finetuned model to models/embedder. With train_embedder.save_steps set it saves checkpoints
to models/checkpoints/embedder, and a killed run resumes from the last one (vdr/checkpoints.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, Features, Image, Value
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.evaluation import InformationRetrievalEvaluator
from sentence_transformers.losses import CachedMultipleNegativesRankingLoss, MatryoshkaLoss
from sentence_transformers.training_args import BatchSamplers

from vdr.checkpoints import Checkpoints
from vdr.launch import is_main_process, relaunch_distributed
from vdr.models import load_embedder, loading_kwargs
from vdr.pages import decode_image
from vdr.params import load_params
from vdr.shards import atomic_path, is_binary, load_beir, read_table, require_columns

BATCH_SAMPLERS = {"batch_sampler": BatchSamplers.BATCH_SAMPLER, "no_duplicates": BatchSamplers.NO_DUPLICATES, "no_duplicates_hashed": BatchSamplers.NO_DUPLICATES_HASHED}


def triplets(table: pa.Table, limit: int | None) -> Dataset:
    """(anchor, positive, negative) columns; image-bytes columns become `datasets` Image columns, decoded per batch."""
    if limit is not None:
        table = table.slice(0, limit)
    page = Image() if is_binary(table.schema.field("positive").type) else Value("string")
    as_page = (lambda value: {"bytes": value, "path": None}) if isinstance(page, Image) else (lambda value: value)
    return Dataset.from_dict(
        {
            "anchor": table["query"].to_pylist(),
            "positive": [as_page(v) for v in table["positive"].to_pylist()],
            "negative": [as_page(v) for v in table["negative_1"].to_pylist()],
        },
        features=Features({"anchor": Value("string"), "positive": page, "negative": page}),
    )


def retrieval_evaluator(dataset: Path, page_input: str, name: str, batch_size: int) -> InformationRetrievalEvaluator:
    """The held-out set as sentence-transformers' evaluator sees it: {id: query}, {id: page}, {query id: {page id}}."""
    corpus, queries, qrels = load_beir(dataset)
    pages = [decode_image(b) for b in corpus["image"].to_pylist()] if page_input == "image" else corpus["text"].to_pylist()
    relevant = {q: {d for d, score in docs.items() if score > 0} for q, docs in qrels.items()}
    return InformationRetrievalEvaluator(
        queries={q: queries[q] for q in relevant},
        corpus=dict(zip(map(str, corpus["id"].to_pylist()), pages)),
        relevant_docs=relevant,
        batch_size=batch_size,
        name=name,
        show_progress_bar=False,
    )


def main(params_path: str, mined: Path, output: Path, checkpoints: Path, live_dir: Path, eval_dataset: Path) -> None:
    # 1. Parameters and the base model
    params = load_params(params_path)
    train = params.train_embedder
    relaunch_distributed(train.num_processes)
    model = load_embedder(params.models.embedder, train.max_seq_length, **loading_kwargs(params.models))
    dimension = model.get_embedding_dimension()
    if train.matryoshka_dims[0] > dimension:
        raise ValueError(f"train_embedder.matryoshka_dims: {train.matryoshka_dims[0]} exceeds the model's embedding size {dimension}")
    inputs = [mined / "train.parquet", Path(__file__)] + ([eval_dataset] if train.eval_steps is not None else [])
    checkpointing = Checkpoints(checkpoints, live_dir, {"models": params.models, "train_embedder": train}, inputs)  # resume if killed

    # 2. Triplets: query, positive page, the hardest mined negative
    table = read_table(mined / "train.parquet")
    require_columns(table, ["query", "positive", "negative_1"], mined / "train.parquet")
    dataset = triplets(table, train.max_train_samples)
    print(f"training on {len(dataset)} triplets ({'page images' if isinstance(dataset.features['positive'], Image) else 'page texts'})")
    evaluator = None
    if train.eval_steps is not None:
        evaluator = retrieval_evaluator(eval_dataset, params.models.page_input, train.evaluator_name, train.evaluator_batch_size)
        print(f"before training: {evaluator(model)}")

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
        per_device_eval_batch_size=train.eval_batch_size,
        learning_rate=train.learning_rate,
        warmup_ratio=train.warmup_ratio,
        bf16=train.bf16,
        batch_sampler=BATCH_SAMPLERS[train.batch_sampler],
        logging_steps=train.logging_steps,
        eval_strategy="no" if train.eval_steps is None else "steps",
        eval_steps=train.eval_steps,
        save_strategy="no" if train.save_steps is None else "steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        seed=train.seed,
        data_seed=train.seed,
        report_to="none",  # DVCLive is attached below, with its own folder
        dataloader_num_workers=0,
    )

    # 5. Train, logging curves with DVCLive (from the main process only)
    callbacks = checkpointing.callbacks() if is_main_process() else []
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=checkpointing.resume)
    if evaluator is not None:
        print(f"after training: {evaluator(model)}")

    # 6. Save the finetuned model atomically (from the main process only)
    if not is_main_process():
        return
    with atomic_path(output) as temporary:
        model.save_pretrained(str(temporary), create_model_card=False)  # its card records wall time; publish writes the card
    checkpointing.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--mined", type=Path, default=Path("data/mined"))
    parser.add_argument("--output", type=Path, default=Path("models/embedder"))
    parser.add_argument("--checkpoints", type=Path, default=Path("models/checkpoints/embedder"))
    parser.add_argument("--live", type=Path, default=Path("dvclive/train_embedder"))
    parser.add_argument("--eval-dataset", type=Path, default=Path("data/pages/eval"))
    args = parser.parse_args()
    main(args.params, args.mined, args.output, args.checkpoints, args.live, args.eval_dataset)
