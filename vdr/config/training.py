"""The training sections (`train_embedder`, `train_reranker`, `train_multivector`) and what they share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from vdr.config.precision import resolve_bf16
from vdr.config.section import Float, Int, Section, TokenLimit

Steps = Int | Float | None  # a count (>= 1) or a fraction of the total steps (< 1); null: never
Sampler = Literal["batch_sampler", "no_duplicates", "no_duplicates_hashed"]  # sentence-transformers' BatchSamplers
ENDPOINT = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$"  # host:port, an IPv6 host in brackets


class Lora(Section):
    """LoRA (vdr/training/lora.py): train low-rank adapters on the chosen linear layers; the base weights stay
    frozen."""

    r: Int = Field(ge=1, description="The adapters' rank.")
    alpha: Float = Field(gt=0, description="The adapters' scale is alpha / r.")
    dropout: Float = Field(0.0, ge=0, lt=1, description="Dropout on the adapters' input, in training only.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Layers to adapt, by name (e.g. q_proj), or every linear layer but the output one."
    )
    merge: bool = Field(False, description="Save the model with the adapters merged; false: the small adapter only.")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _targets(cls, value):
        names = value if isinstance(value, list) else None
        if value != "all-linear" and not (names and all(isinstance(n, str) and n.strip() for n in names)):
            raise ValueError(
                f"must be a non-empty list of module names (e.g. [q_proj, v_proj]) or all-linear, found {value!r}"
            )
        return value


class Training(Section):
    """What both training stages share: the trainer's schedule, precision, logging, checkpoints and processes."""

    # le=1000 only catches a runaway value
    epochs: Float = Field(gt=0, le=1000, description="Passes over the training data; a fraction trains part of one.")
    batch_size: Int = Field(ge=1, description="Training examples per step and process.")
    learning_rate: Float = Field(gt=0, lt=1, description="The peak learning rate.")
    warmup_ratio: Float = Field(ge=0, le=1, description="The share of the steps that warm the learning rate up.")
    bf16: bool | Literal["auto"] = Field(False, description="Train under bf16 autocast; auto: where it is native.")
    dropout: Float | None = Field(
        None, ge=0, lt=1, description="Every dropout layer's rate while training; null: the model's own."
    )
    logging_steps: Int | Float = Field(1, gt=0, description="Log every n steps, or a fraction of the run.")
    eval_steps: Steps = Field(None, gt=0, description="Evaluate every n steps or fraction; null: not during training.")
    save_steps: Steps = Field(None, gt=0, description="Checkpoint every n steps or fraction, to resume; null: never.")
    save_total_limit: Int | None = Field(None, ge=1, description="Checkpoints kept; null: all.")
    seed: Int = Field(description="Seed of the training run.")
    num_processes: Int = Field(1, ge=1, description="Training processes per node; > 1: DDP through torchrun.")
    num_nodes: Int = Field(1, ge=1, description="Machines; > 1: torchrun across them, ranks from the environment.")
    rdzv_endpoint: str | None = Field(
        None, pattern=ENDPOINT, description="Node 0's host:port; null: MASTER_ADDR and MASTER_PORT of the environment."
    )
    lora: Lora | None = Field(None, description="LoRA adapters, the base weights frozen; null: full finetuning.")
    freeze_vision: bool = Field(False, description="Keep a multimodal model's vision tower as it is.")

    @field_validator("bf16")
    @classmethod
    def _bf16(cls, value):
        return resolve_bf16(value)  # vdr/config/precision.py: auto -> what this machine computes natively

    @model_validator(mode="after")
    def _whole_step_counts(self):
        for key in ("logging_steps", "eval_steps", "save_steps"):
            value = getattr(self, key)
            if value is not None and value >= 1 and value != int(value):
                raise ValueError(
                    f"{key}: {value} is neither a whole number of steps nor a fraction of the run (below 1), and the "
                    f"trainer would refuse it only after the model has loaded; set {key}: {int(value)} or a fraction "
                    "such as 0.1"
                )
        return self

    @model_validator(mode="after")
    def _checkpoints_on_one_node(self):
        if self.num_nodes > 1 and self.save_steps is not None:
            raise ValueError(
                "save_steps: checkpoints are not supported across nodes (num_nodes > 1): transformers writes a "
                "checkpoint's weights on the first node only, so the other nodes could not resume; set save_steps: "
                "null, or train on one node"
            )
        return self


class TrainEmbedder(Training):
    max_train_samples: Int | None = Field(ge=2, description="Training triplets used; null: every one.")
    max_seq_length: TokenLimit = Field(
        description="Token limit; null: the model's (image tokens never cut); auto: measured from the training pages."
    )
    batch_size: Int = Field(ge=2, description="Triplets per step and process, each other's in-batch negatives.")
    mini_batch_size: Int | None = Field(
        ge=1, description="Inputs embedded at a time by the cached loss (GradCache); null: the plain loss."
    )
    batch_sampler: Sampler = Field("no_duplicates", description="How batches are drawn; no_duplicates: no repeats.")
    evaluator_name: str = Field("eval", description="The evaluator's name, the prefix of its metrics.")
    evaluator_batch_size: Int = Field(64, ge=1, description="Inputs per batch of the evaluator.")
    matryoshka_dims: list[Int] = Field(min_length=1, description="The embedding sizes trained, in decreasing order.")
    gather_across_devices: bool = Field(False, description="num_processes > 1: in-batch negatives of every device.")

    @model_validator(mode="after")
    def _dims(self):
        if (
            any(d <= 0 for d in self.matryoshka_dims)
            or sorted(self.matryoshka_dims, reverse=True) != self.matryoshka_dims
        ):
            raise ValueError("matryoshka_dims must be positive and in decreasing order")
        return self


class TrainReranker(Training):
    max_train_queries: Int | None = Field(ge=1, description="Training queries used; null: every query.")
    negatives_per_positive: Int = Field(ge=1, description="Negative pairs per positive pair.")
    pos_weight: Float = Field(1.0, gt=0, description="The loss's weight of the positive (label 1) pairs.")
    eval_queries: Int = Field(0, ge=0, description="Queries held out of training for the evaluator; 0: no evaluator.")
    max_length: Int | None = Field(ge=8, description="Token limit of a query and page pair; null: the model's own.")
    gradient_accumulation_steps: Int = Field(1, ge=1, description="Steps whose gradients add up to one update.")
    num_layers: Int | None = Field(None, ge=1, description="Keep the reranker's first n layers; null: every layer.")

    @model_validator(mode="after")
    def _whole_model_under_an_adapter(self):
        if self.lora is not None and self.num_layers is not None:
            raise ValueError(
                f"num_layers, lora: a LoRA adapter is saved without its base model, which loads back with every "
                f"layer, so the {self.num_layers} kept layers would not be what is scored; set num_layers: null "
                "with lora, or lora: null"
            )
        return self


class TrainMultivector(Training):
    """Late interaction (stages/train_multivector.py, stages/evaluate_multivector.py, vdr/models/multivector.py):
    models.embedder as a MultiVectorEncoder, its token vectors through a fresh projection to projection_dim, pages
    ranked by MaxSim. enabled: false (the cpu default), null or absent: no late interaction in this run, and its two
    stages only write empty outputs."""

    enabled: bool = Field(True, description="Late interaction in this run; false: its stages write empty outputs.")
    max_train_samples: Int | None = Field(None, ge=2, description="Training triplets used; null: every one.")
    batch_size: Int = Field(ge=2, description="Triplets per step, each other's in-batch negatives.")
    mini_batch_size: Int | None = Field(None, ge=1, description="Inputs per GradCache chunk; null: the plain loss.")
    batch_sampler: Sampler = Field("no_duplicates", description="How batches are drawn; no_duplicates: no repeats.")
    projection_dim: Int = Field(128, ge=1, description="Size of each token vector (a fresh projection's output).")
    projection_learning_rate: Float | None = Field(
        None, gt=0, lt=1, description="The fresh projection's learning rate; null: learning_rate."
    )
    max_grad_norm: Float = Field(1.0, gt=0, description="Gradients are clipped to this norm.")
    scale: Float = Field(1.0, gt=0, description="The loss's 1 / temperature on MaxSim scores.")
    query_length: Int | None = Field(None, ge=4, description="Tokens per query; null: the model's limit.")
    document_length: Int | None = Field(None, ge=8, description="Tokens per page; null: the model's (images need it).")
    evaluator_name: str = Field("eval", description="The evaluator's name, the prefix of its metrics.")
    evaluator_batch_size: Int = Field(32, ge=1, description="Inputs per batch of the evaluator.")
    encode_batch_size: Int = Field(32, ge=1, description="evaluate_multivector: inputs per encoding batch.")
    index_dtype: Literal["float16", "float32"] = Field("float16", description="How page token vectors are stored.")

    @model_validator(mode="after")
    def _one_process(self):
        if self.num_processes != 1 or self.num_nodes != 1:
            raise ValueError(
                "num_processes, num_nodes: the multi-vector model trains in one process on one node; set both to 1"
            )
        return self

    @model_validator(mode="after")
    def _mini_batches(self):
        if self.enabled and self.mini_batch_size is not None and self.mini_batch_size > self.batch_size:
            raise ValueError(
                f"mini_batch_size: {self.mini_batch_size} exceeds batch_size {self.batch_size}, so the cached loss "
                "would embed each batch whole, as the plain loss does, at the cost of an extra forward pass; set "
                "mini_batch_size: null (the plain loss) or lower it below batch_size"
            )
        return self
