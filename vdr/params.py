"""The typed schema of params.yaml: every stage loads its sections through here.

A typo, a wrong type or an out-of-range value stops the stage with one message that names the key,
the value found and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Models(Section):
    embedder: str = Field(min_length=1)
    reranker: str = Field(min_length=1)


class Fetch(Section):
    source: Literal["docstrings"]
    packages: list[str] = Field(min_length=1)
    min_summary_chars: int = Field(ge=1)
    max_summary_chars: int = Field(ge=1)
    min_body_chars: int = Field(ge=1)
    max_body_chars: int = Field(ge=1)
    num_train_pairs: int = Field(ge=1)
    num_eval_queries: int = Field(ge=1)
    num_eval_pages: int = Field(ge=1)
    seed: int

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_summary_chars > self.max_summary_chars:
            raise ValueError("min_summary_chars must be <= max_summary_chars")
        if self.min_body_chars > self.max_body_chars:
            raise ValueError("min_body_chars must be <= max_body_chars")
        if self.num_eval_queries > self.num_eval_pages:
            raise ValueError("num_eval_queries must be <= num_eval_pages (each query has its own page)")
        return self


class Render(Section):
    dpi: int = Field(ge=36, le=600)
    shard_size: int = Field(ge=1)
    workers: int = Field(ge=1)


class Mine(Section):
    max_seq_length: int = Field(ge=8)
    num_negatives: int = Field(ge=1)
    range_min: int = Field(ge=0)
    range_max: int = Field(ge=1)
    relative_margin: float = Field(ge=0, lt=1)
    batch_size: int = Field(ge=1)

    @model_validator(mode="after")
    def _range(self):
        if self.range_max - self.range_min < self.num_negatives:
            raise ValueError("range_max - range_min must be at least num_negatives")
        return self


class TrainEmbedder(Section):
    max_train_samples: int = Field(ge=2)
    max_seq_length: int = Field(ge=8)
    epochs: float = Field(gt=0)
    batch_size: int = Field(ge=2)
    mini_batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0, lt=1)
    warmup_ratio: float = Field(ge=0, le=1)
    matryoshka_dims: list[int] = Field(min_length=1)
    seed: int
    num_processes: int = Field(default=1, ge=1)
    gather_across_devices: bool = False

    @model_validator(mode="after")
    def _dims(self):
        if any(d <= 0 for d in self.matryoshka_dims) or sorted(self.matryoshka_dims, reverse=True) != self.matryoshka_dims:
            raise ValueError("matryoshka_dims must be positive and in decreasing order")
        return self


class TrainReranker(Section):
    max_train_queries: int = Field(ge=1)
    negatives_per_positive: int = Field(ge=1)
    max_length: int = Field(ge=8)
    epochs: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0, lt=1)
    warmup_ratio: float = Field(ge=0, le=1)
    seed: int
    num_processes: int = Field(default=1, ge=1)


class Evaluate(Section):
    max_seq_length: int = Field(ge=8)
    batch_size: int = Field(ge=1)
    top_k: int = Field(ge=1)
    dims: list[int] = Field(min_length=1)

    @model_validator(mode="after")
    def _dims(self):
        if any(d <= 0 for d in self.dims):
            raise ValueError("dims must be positive")
        return self


class Publish(Section):
    push: bool
    repo_id: str
    private: bool

    @model_validator(mode="after")
    def _repo(self):
        if self.push and "/" not in self.repo_id:
            raise ValueError("push: true needs repo_id as 'owner/name'")
        return self


class Params(Section):
    models: Models
    fetch: Fetch
    render: Render
    mine: Mine
    train_embedder: TrainEmbedder
    train_reranker: TrainReranker
    evaluate: Evaluate
    publish: Publish


class ParamsError(ValueError):
    pass


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (a typo?); remove it or check the spelling against params.yaml's sections"
    elif error["type"] == "missing":
        return f"{key}: missing; add it to params.yaml"
    return f"{key}: {message} (found {value!r})"


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run the stage from the repository root, where params.yaml lives")
    with open(path) as handle:
        raw = yaml.safe_load(handle) or {}
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        problems = "\n  ".join(_describe(e) for e in error.errors())
        raise ParamsError(f"{path}: invalid parameters:\n  {problems}") from None
