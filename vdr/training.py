"""ONE trainer setup for both training stages: training arguments, DVCLive curves, checkpoints, the atomic save.

A training stage reads like the reference training script: load the model, build the dataset, the loss
and the evaluator, then

    checkpointing = resumable(
        paths.checkpoints, paths.live, {"models": ..., "train_embedder": train}, [data], __file__
    )
    args = training_arguments(
        SentenceTransformerTrainingArguments, train, paths.checkpoints, evaluator, batch_sampler=...
    )
    train(SentenceTransformerTrainer, model, args, dataset, loss, evaluator, checkpointing)
    save(model, paths.output, checkpointing)

The fields both stages share (params.yaml: vdr/params.py `Training`) map to the same Trainer arguments
here, so the two stages cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vdr.checkpoints import Checkpoints
from vdr.launch import is_main_process
from vdr.provenance import LOCK_FILE, code_files
from vdr.shards import atomic_path


def resumable(folder: Path, live_dir: Path, params: dict, data: list[Path], script: str) -> Checkpoints:
    """The stage's checkpoints, resumed only for the same params, data, code (the script and every project
    module it imports, as in its dvc.yaml deps) and pinned libraries."""
    root = Path(script).resolve().parents[1]  # the repository holding stages/
    code = [root / path for path in code_files(Path(script).resolve().relative_to(root), root)]
    lock = [root / LOCK_FILE] if (root / LOCK_FILE).exists() else []
    return Checkpoints(folder, live_dir, params, [*data, *code, *lock])


def training_arguments(arguments_class, train, output_dir: Path, evaluator=None, **specific):
    """Trainer arguments from a `Training` params section; `specific` adds what only one stage sets."""
    return arguments_class(
        output_dir=str(output_dir),
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size,
        learning_rate=train.learning_rate,
        warmup_ratio=train.warmup_ratio,
        bf16=train.bf16,
        use_cpu=not torch.cuda.is_available(),  # bf16 autocast on a CPU needs this said explicitly
        logging_steps=train.logging_steps,
        eval_strategy="steps" if evaluator is not None and train.eval_steps else "no",
        eval_steps=train.eval_steps,
        save_strategy="no" if train.save_steps is None else "steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        seed=train.seed,
        data_seed=train.seed,
        report_to="none",  # DVCLive is attached as a callback, with its own folder
        dataloader_num_workers=0,
        **specific,
    )


def train(trainer_class, model, args, dataset, loss, evaluator, checkpointing: Checkpoints):
    """Train, resuming from the last checkpoint of the same run, with DVCLive curves from the main process."""
    callbacks = checkpointing.callbacks() if is_main_process() else []
    trainer = trainer_class(
        model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator, callbacks=callbacks
    )
    trainer.train(resume_from_checkpoint=checkpointing.resume)
    return trainer


def save(model, output: Path, checkpointing: Checkpoints) -> None:
    """From the main process: the trained model, atomically, then drop the checkpoints (the run is done)."""
    if not is_main_process():
        return
    with atomic_path(output) as temporary:
        model.save_pretrained(
            str(temporary), create_model_card=False
        )  # its card records wall time; publish writes the card
    checkpointing.finish()
