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
    save(model, paths.output, checkpointing, adapter)  # adapter: vdr/training/lora.py prepare (None: full finetuning)

The fields both stages share (params.yaml: vdr/config/training.py `Training`) map to the same Trainer arguments
here, so the two stages cannot drift apart.

A run that diverges fails its stage (vdr/models/finite.py): the first NaN or infinite logged loss or gradient
norm stops training with a message naming the stage, the step and the parameters to change; so does a
NaN weight at a checkpoint (not marked complete, so never resumed) or after training, before `save`
writes anything. Nothing is saved and the checkpoints are kept.
"""

from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset, Features, Image, Value
from sentence_transformers.base.sampler import BatchSamplers
from transformers import TrainerCallback

from vdr.config.training import Training
from vdr.deps import LOCK_FILE, code_files
from vdr.io.files import atomic_path
from vdr.io.tables import is_binary, read_table, require_columns
from vdr.models.finite import NotFiniteError, not_finite_logs, not_finite_weights
from vdr.training.checkpoints import Checkpoints
from vdr.training.lora import Adapter, adapter_trainer, has_adapter, write_model
from vdr.training.nodes import is_main_process

BATCH_SAMPLERS = {  # train_embedder.batch_sampler and train_multivector.batch_sampler
    "batch_sampler": BatchSamplers.BATCH_SAMPLER,
    "no_duplicates": BatchSamplers.NO_DUPLICATES,
    "no_duplicates_hashed": BatchSamplers.NO_DUPLICATES_HASHED,
}


def embedder_loss(model, config):
    """train_embedder's loss: MatryoshkaLoss over in-batch and hard negatives at every dimension of
    config.matryoshka_dims. The cached loss (GradCache) embeds mini-batches of config.mini_batch_size to bound memory,
    at the cost of a second forward pass; with mini_batch_size null the plain loss embeds the whole batch at once."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    if config.mini_batch_size is None:
        inner_loss = MultipleNegativesRankingLoss(model, gather_across_devices=config.gather_across_devices)
    else:
        inner_loss = CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=config.mini_batch_size, gather_across_devices=config.gather_across_devices
        )
    return MatryoshkaLoss(model, inner_loss, matryoshka_dims=config.matryoshka_dims)


def read_triplets(path: Path, limit: int | None) -> Dataset:
    """(anchor, positive, negative) columns of the mined rows in `path` (query, positive, negative_1; a missing one is
    named), the first `limit` of them; image-bytes columns become `datasets` Image columns, decoded per batch. What
    both embedder stages train on; says how many and whether pages are images or texts."""
    table = read_table(path)
    require_columns(table, ["query", "positive", "negative_1"], path)
    if limit is not None:
        table = table.slice(0, limit)
    page = Image() if is_binary(table.schema.field("positive").type) else Value("string")
    as_page = (lambda value: {"bytes": value, "path": None}) if isinstance(page, Image) else (lambda value: value)
    dataset = Dataset.from_dict(
        {
            "anchor": table["query"].to_pylist(),
            "positive": [as_page(v) for v in table["positive"].to_pylist()],
            "negative": [as_page(v) for v in table["negative_1"].to_pylist()],
        },
        features=Features({"anchor": Value("string"), "positive": page, "negative": page}),
    )
    print(f"training on {len(dataset)} triplets ({'page images' if isinstance(page, Image) else 'page texts'})")
    return dataset


def resumable(folder: Path, live_dir: Path, params: dict, data: list[Path], script: str) -> Checkpoints:
    """The stage's checkpoints, resumed only for the same params, data, code (the script and every project
    module it imports, as in its dvc.yaml deps) and pinned libraries."""
    root = Path(script).resolve().parents[1]  # the repository holding stages/
    code = [root / path for path in code_files(Path(script).resolve().relative_to(root), root)]
    lock = [root / LOCK_FILE] if (root / LOCK_FILE).exists() else []
    # the params.yaml section of the stage (train_embedder, train_reranker), named when the run diverges
    section = next((name for name, value in params.items() if isinstance(value, Training)), Path(script).stem)
    return Checkpoints(folder, live_dir, params, [*data, *code, *lock], section)


def divergence_hint(stage: str | None, section: dict) -> str:
    """What to change when a training stage diverges: the parameters most likely to blame, with their values."""
    key = f"{stage}." if stage else ""

    def now(name: str) -> str:
        return f" (now {section[name]})" if name in section else ""

    advice = [f"lower {key}learning_rate{now('learning_rate')}", f"raise {key}warmup_ratio{now('warmup_ratio')}"]
    if "pos_weight" in section:
        advice.append(f"bring {key}pos_weight{now('pos_weight')} closer to 1")
    if section.get("bf16"):
        advice.append(f"set {key}bf16: false")
    return f"{', '.join(advice[:-1])} or {advice[-1]}, then rerun the stage"


def _hint(checkpointing: Checkpoints) -> str:
    """The divergence hint of the stage whose params.yaml section `resumable` recorded, with that section's values."""
    section = checkpointing.section
    return divergence_hint(section, checkpointing.fingerprint["params"].get(section, {}))


class StopWhenDiverged(TrainerCallback):
    """Stop the stage (raise) at the first NaN or infinite logged loss or gradient norm, and at a checkpoint whose
    weights are not finite: before `_MarkComplete`, so that checkpoint is never marked complete nor resumed.

    Runs on every process: the logged loss is gathered and the gradients reduced, so all of them stop together."""

    LOGGED = ("loss", "grad_norm", "train_loss")

    def __init__(self, hint: str):
        self.hint = hint

    def on_log(self, args, state, control, logs=None, **kwargs):
        bad = not_finite_logs(logs or {}, self.LOGGED)
        if bad:
            found = " and ".join(f"{key} is {value}" for key, value in bad.items())
            raise NotFiniteError(
                f"the training diverged at step {state.global_step}: the logged {found}; {self.hint} "
                "(no model was saved)"
            )

    def on_save(self, args, state, control, model=None, **kwargs):
        bad = not_finite_weights(model, f"checkpoint-{state.global_step}") if model is not None else None
        if bad:
            raise NotFiniteError(f"the training diverged by step {state.global_step}: {bad}; {self.hint}")


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
        # True (the default) logs a NaN or infinite loss as the mean of the logging window's earlier steps, 0 when
        # there are none (logging_steps: 1): a diverged run logged loss 0. StopWhenDiverged must see the NaN
        logging_nan_inf_filter=False,
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
    """Train, resuming from the last checkpoint of the same run, with DVCLive curves from the main process;
    a NaN or infinite loss or gradient norm stops it (StopWhenDiverged, on every process). With LoRA adapters,
    checkpoints hold the adapter (vdr/training/lora.py adapter_trainer)."""
    if has_adapter(getattr(model, "transformers_model", None)):
        trainer_class = adapter_trainer(trainer_class)
    guard = StopWhenDiverged(_hint(checkpointing))  # first: it acts before a checkpoint is marked complete
    callbacks = [guard, *(checkpointing.callbacks() if is_main_process() else [])]
    trainer = trainer_class(
        model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator, callbacks=callbacks
    )
    trainer.train(resume_from_checkpoint=checkpointing.resume)
    return trainer


def leave_process_group() -> None:
    """After training, on every process: wait for all, then end the distributed group. While one exists,
    transformers writes a model's weights on the global rank 0 only; the first process of every node saves the
    model (vdr/training/launch.py is_main_process), so each node ends with the same outputs."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def save(model, output: Path, checkpointing: Checkpoints, adapter: Adapter | None = None) -> None:
    """From the main process: the trained model, atomically, then drop the checkpoints (the run is done).
    With a LoRA `adapter` (vdr/training/lora.py), the adapter only or the merged model, as its `merge` says.

    A model with a NaN or infinite trainable weight is refused (on every process) and the checkpoints are kept."""
    bad = not_finite_weights(model, "the trained model")
    if bad:
        raise NotFiniteError(f"the training diverged: {bad}, so {output} was not written; {_hint(checkpointing)}")
    leave_process_group()
    if not is_main_process():
        return
    with atomic_path(output) as temporary:
        write_model(model, temporary, adapter)
    checkpointing.finish()
