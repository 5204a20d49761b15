"""The `generate` section: queries written for pages that have none (your own documents)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from vdr.config.section import Float, Int, Section


class Generate(Section):
    """Queries for pages that have none (stages/generate.py, vdr/data/querygen.py): fetch.source documents only.
    backend none: the source's own queries pass through unchanged."""

    backend: Literal["none", "openai", "transformers"] = Field("none", description="What writes the queries.")
    base_url: str = Field("", description="openai: the server's OpenAI-compatible root, e.g. http://host:8000/v1.")
    model: str = Field("", description="The model the server serves (openai), or a Hub id or folder (transformers).")
    prompt: str = Field("", description="The prompt, {n} for queries_per_page; empty: querygen.py's DEFAULT_PROMPT.")
    queries_per_page: Int = Field(2, ge=1, le=20, description="Queries asked for per page.")
    with_text_layer: bool = Field(False, description="Also send the text layer, for models that read images badly.")
    temperature: Float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: Float = Field(0.95, gt=0, le=1, description="Nucleus sampling: the probability mass sampled from.")
    max_tokens: Int = Field(256, ge=8, description="The most tokens of one answer.")
    seed: Int = Field(42, description="Seed of the page samples and of the generation.")
    train_pages: Int | None = Field(None, ge=1, description="Training pages asked (a seeded sample); null: all.")
    eval_pages: Int | None = Field(None, ge=1, description="Held-out pages asked (a seeded sample); null: all.")
    concurrency: Int = Field(4, ge=1, description="openai: requests in flight.")
    timeout_s: Float = Field(
        120, gt=0, description="openai: seconds per request, all of it (connecting to the answer's last byte)."
    )
    max_retries: Int = Field(4, ge=0, description="openai: retries of timeouts, connection errors, 429 and 5xx.")
    batch_size: Int = Field(8, ge=1, description="transformers: pages per generate() call.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="transformers: weight dtype.")
    on_bad_page: Literal["error", "skip"] = Field("skip", description="A page that got no query: stop or skip it.")
    min_query_chars: Int = Field(10, ge=1, description="Shorter queries are dropped, in characters.")
    max_query_chars: Int = Field(300, ge=1, description="Longer queries are dropped, in characters.")
    consistency_top_k: Int | None = Field(
        20, ge=1, description="Keep a training query only if the base embedder ranks its page in the top k; null: all."
    )
    filter_eval_queries: bool = Field(False, description="Filter held-out queries too (it favours the base embedder).")
    validation_share: Float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Share of the training documents held out as the validation split (evaluate.fusion_weight auto).",
    )
    length_coverage: Float = Field(
        0.9,
        gt=0,
        le=1,
        description="max_seq_length auto: the token limit that holds this share of the training pages whole.",
    )

    @model_validator(mode="after")
    def _backend(self):
        if self.backend == "openai" and not re.match(r"^https?://", self.base_url):
            raise ValueError(
                f"base_url: the openai backend needs the server's http(s) URL, e.g. http://localhost:8000/v1 "
                f"(found {self.base_url!r})"
            )
        if self.backend != "none" and not self.model.strip():
            raise ValueError("model: name the model that writes the queries, e.g. -S generate.model=NAME")
        if self.min_query_chars > self.max_query_chars:
            raise ValueError("min_query_chars must be <= max_query_chars")
        return self
