"""The `mine` and `mine_reranker` sections: hard negatives for the embedder and for the reranker."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vdr.config.section import Float, Int, Section, TokenLimit


class Mine(Section):
    source: Literal["given", "mined"] = Field("mined", description="The dataset's own negatives, or mined ones.")
    max_seq_length: TokenLimit = Field(
        None, description="Token limit when encoding; null: the model's own; auto: measured from the training pages."
    )
    num_negatives: Int = Field(ge=1, description="Hard negatives kept per training pair.")
    range_min: Int = Field(ge=0, description="Skip the top range_min ranks of the search.")
    range_max: Int = Field(ge=1, description="Take candidates from the top range_max ranks.")
    relative_margin: Float = Field(ge=0, lt=1, description="Skip candidates above (1 - margin) x the positive score.")
    sampling_strategy: Literal["top", "random"] = Field("top", description="Best-ranked candidates, or a seeded draw.")
    batch_size: Int = Field(ge=1, description="Inputs per encoding batch.")
    seed: Int = Field(42, description="Seed of the random draw.")

    @model_validator(mode="after")
    def _range(self):
        if self.range_max - self.range_min < self.num_negatives:
            raise ValueError("range_max - range_min must be at least num_negatives")
        return self


class MineReranker(Mine):
    """Negatives for the reranker: mined like `mine`, but with the embedder whose top-k the reranker will rerank."""

    embedder: Literal["finetuned", "base"] = Field("finetuned", description="Mine with the trained or base embedder.")
