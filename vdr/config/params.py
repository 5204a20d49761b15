"""The whole of params.yaml: every section's schema, and the checks across sections (the check stage).

Each section's schema lives in its own module (vdr/config/models.py, fetch.py, ...), which the stages that read it
import through `load_sections` (vdr/config/section.py). `load_params` validates the whole file: an unknown section,
and a value that only fails beside another section's (generate.backend with fetch.source, the reranker's negatives
with mine_reranker's), stop the check stage before any stage's outputs are removed.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field, model_validator

from vdr.config.evaluation import Encode, Evaluate, Search
from vdr.config.fetch import Fetch
from vdr.config.generate import Generate
from vdr.config.lengths import auto_sections
from vdr.config.mining import Mine, MineReranker
from vdr.config.models import Models
from vdr.config.publish import Publish
from vdr.config.render import Render
from vdr.config.section import Sections, read_params, validated
from vdr.config.training import TrainEmbedder, TrainMultivector, TrainReranker


class Params(Sections):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    profile_name: str = Field("cpu", description="The conf/profile that composed this file; no stage reads it.")
    models: Models = Field(description="Which embedder and reranker, how they read a page, what their loaders get.")
    fetch: Fetch = Field(description="Where the queries and pages come from: one schema per fetch.source.")
    render: Render = Field(description="Pages typeset or normalised, and written as Parquet shards.")
    generate: Generate = Field(description="Queries written for pages that have none (fetch.source: documents).")
    mine: Mine = Field(description="Hard negatives for the embedder.")
    mine_reranker: MineReranker = Field(description="Hard negatives for the reranker, mined like mine's.")
    train_embedder: TrainEmbedder = Field(description="Finetuning the embedder.")
    train_reranker: TrainReranker = Field(description="Finetuning the reranker.")
    train_multivector: TrainMultivector | None = Field(None, description="Late interaction; null or absent: off.")
    evaluate: Evaluate = Field(description="Scoring the base and finetuned models on the held-out set.")
    encode: Encode = Field(description="Where the embedders encode and the reranker scores.")
    search: Search = Field(description="Exact search, and page embeddings in bounded memory.")
    publish: Publish = Field(description="Where the models go on the Hub, and whether they are pushed at all.")

    @model_validator(mode="after")
    def _late_interaction_pages(self):
        late = self.late_interaction
        if late is not None and self.models.page_input == "image" and late.document_length is not None:
            raise ValueError(
                f"train_multivector.document_length: pages are read as images (models.page_input: image), and a "
                f"limit of {late.document_length} tokens would cut their image tokens; set "
                "train_multivector.document_length: null"
            )
        return self

    @model_validator(mode="after")
    def _measured_lengths_of_text(self):
        auto = auto_sections(self)
        if auto and self.models.page_input == "image":
            raise ValueError(
                f"{auto[0]}.max_seq_length: auto measures the pages' text in tokens, but pages are read as images "
                f"(models.page_input: image), whose image tokens are never cut; set {auto[0]}.max_seq_length: null"
            )
        return self

    @model_validator(mode="after")
    def _multivector_repo(self):
        if self.publish.push and self.late_interaction is not None and self.publish.multivector_repo_id is None:
            raise ValueError(
                "publish.multivector_repo_id: late interaction is on and publish.push is true, so the multi-vector "
                "model is pushed too; set publish.multivector_repo_id to its repo as 'owner/name' "
                "(e.g. -S publish.multivector_repo_id=ORG/NAME), or turn late interaction off "
                "(train_multivector.enabled: false)"
            )
        return self

    @model_validator(mode="after")
    def _across_sections(self):
        documents = self.fetch.source == "documents"
        if documents and self.generate.backend == "none":
            raise ValueError(
                "generate.backend: fetch.source documents has no queries; set generate.backend to openai (with "
                "generate.base_url and generate.model) or transformers (with generate.model)"
            )
        if not documents and self.generate.backend != "none":
            raise ValueError(
                f"generate.backend: queries are generated for fetch.source documents only; fetch.source "
                f"{self.fetch.source} brings its own, so set generate.backend: none"
            )
        if self.evaluate.fusion_weight == "auto" and self.generate.validation_share == 0:
            raise ValueError(
                "evaluate.fusion_weight: auto chooses the weight on the validation split, and "
                "generate.validation_share is 0 (no split); set generate.validation_share (e.g. 0.2) or a weight "
                "between 0 and 1"
            )
        if self.train_reranker.negatives_per_positive > self.mine_reranker.num_negatives:
            raise ValueError(
                f"train_reranker.negatives_per_positive ({self.train_reranker.negatives_per_positive}) "
                f"exceeds mine_reranker.num_negatives ({self.mine_reranker.num_negatives}): "
                "the reranker can only use the negatives mine_reranker keeps; lower the first or raise the second"
            )
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    return validated(Params, read_params(path), path)
