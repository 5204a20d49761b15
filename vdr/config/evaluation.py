"""The `evaluate`, `encode` and `search` sections: held-out scoring, where encoding runs, the memory bound."""

from __future__ import annotations

import math
import re
from typing import Literal, Union

from pydantic import Field, field_validator, model_validator

from vdr.config.precision import resolve_bf16
from vdr.config.section import Float, Int, Section, TokenLimit
from vdr.errors import FieldError


class Evaluate(Section):
    max_seq_length: TokenLimit = Field(
        description="Token limit when encoding; null: the model's own; auto: measured from the training pages."
    )
    batch_size: Int = Field(ge=1, description="Inputs per encoding and reranking batch.")
    top_k: Int = Field(ge=1, description="The finetuned embedder's top-k pages are reranked.")
    fusion_weight: Union[Literal["auto"], float] = Field(
        1.0,
        description="The reranker's weight in the fused score, 0 to 1 (1: alone); auto: chosen on validation.",
    )
    base_reranker: bool = Field(False, description="Also rerank with models.reranker as it is (a trained reranker).")
    base_as_is: bool = Field(
        True, description="Also score the base embedder at its own token limit, when max_seq_length is shorter."
    )
    dims: list[Int] = Field(min_length=1, description="The Matryoshka dimensions scored.")

    @field_validator("fusion_weight", mode="before")
    @classmethod
    def _fusion_weight(cls, value):
        if value == "auto":
            return value
        if isinstance(value, float) and not math.isfinite(value):  # as every section words it (section.py)
            raise ValueError(f"must be a finite number; YAML .inf and .nan are not allowed (found {value!r})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(
                f"must be auto (chosen on the validation split) or a number from 0 to 1 (found {value!r})"
            )
        return float(value)

    @model_validator(mode="after")
    def _dims(self):
        if any(d <= 0 for d in self.dims):
            raise ValueError("dims must be positive")
        return self


DEVICE = re.compile(r"^(cpu|mps|(cuda|xpu|npu)(:\d+)?)$")  # a torch device name, as sentence-transformers takes it


def check_devices(value, lists: str = "[cuda:0, cuda:1] or [cpu, cpu]"):
    """`auto`, or a non-empty list of torch device names (`lists`: how the example is written); otherwise
    FieldError naming `devices`."""
    if value == "auto":
        return value
    example = f"auto, or a list of devices such as {lists}"
    if not isinstance(value, (list, tuple)) or not value:
        raise FieldError("devices", f"must be {example}; got {value!r}")
    bad = [device for device in value if not (isinstance(device, str) and DEVICE.match(device))]
    if bad:
        raise FieldError(
            "devices", f"{bad[0]!r} is not a device name (cpu, cuda:N, mps, xpu:N, npu:N); must be {example}"
        )
    return list(value)


class Encode(Section):
    """Where and how the embedders encode and the reranker scores (embed_base, mine, mine_reranker, evaluate, and
    evaluate_multivector): vdr/retrieval/devices.py."""

    devices: Union[Literal["auto"], list[str]] = Field(
        "auto", description="auto: every visible CUDA device when 2 or more; or a list, one process each: [cpu, cpu]."
    )
    bf16: bool | Literal["auto"] = Field(
        False, description="Encode and rerank under bf16 autocast (weights, outputs float32); auto: where native."
    )

    @field_validator("bf16")
    @classmethod
    def _bf16(cls, value):
        return resolve_bf16(value)  # vdr/config/precision.py: auto -> what this machine computes natively

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value):
        try:
            return check_devices(value)
        except FieldError as error:  # the schema names the key itself
            raise ValueError(error.message) from None


class Search(Section):
    """Exact search (vdr/retrieval/search.py) and page embeddings in bounded memory (mine, mine_reranker, evaluate)."""

    max_memory_mb: Float = Field(1024, gt=0, description="MiB for page embeddings; more go to a temporary memmap.")
