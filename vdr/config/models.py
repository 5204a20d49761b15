"""The `models` section: which embedder and reranker, how they read a page, and what their loaders are given."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vdr.config.section import Int, Section


class ModelKwargs(Section):
    """Passed to `from_pretrained` of both models (`model_kwargs=`). null leaves the library default."""

    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = Field(
        None, description="The attention implementation; null: the library's default."
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] | None = Field(
        None, description="The weights' dtype: bfloat16 as in the published recipe, or float32 with train_*.bf16."
    )


class ImageSize(Section):
    shortest_edge: Int = Field(ge=1, description="The fewest pixels of an image (min_pixels in transformers 5 terms).")
    longest_edge: Int = Field(ge=1, description="The most pixels of an image (max_pixels in transformers 5 terms).")

    @model_validator(mode="after")
    def _order(self):
        if self.shortest_edge > self.longest_edge:
            raise ValueError("shortest_edge (min pixels) must be <= longest_edge (max pixels)")
        return self


class ProcessorKwargs(Section):
    """Passed to the processor of both models (`processor_kwargs=`); checked after loading."""

    size: ImageSize | None = Field(None, description="The image processor's pixel bounds; null: the processor's own.")


class Models(Section):
    embedder: str = Field(min_length=1, description="The embedder to train: Hub id, folder or pkg:<package>/<folder>.")
    reranker: str = Field(min_length=1, description="The reranker to train, named as the embedder is.")
    page_input: Literal["text", "image"] = Field("text", description="Read a page's text layer or its screenshot.")
    model_kwargs: ModelKwargs = Field(ModelKwargs(), description="Given to both models' from_pretrained.")
    processor_kwargs: ProcessorKwargs = Field(ProcessorKwargs(), description="Given to both models' processor.")
