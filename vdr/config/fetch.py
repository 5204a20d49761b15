"""The `fetch` section: one schema per data source, chosen by `fetch.source`."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from vdr.config.section import Float, Int, Section


class FetchDocstrings(Section):
    source: Literal["docstrings"] = Field(description="API docstrings: the summary line as query, the rest as page.")
    packages: list[str] = Field(min_length=1, description="The installed packages whose docstrings are read.")
    min_summary_chars: Int = Field(ge=1, description="The shortest summary line kept as a query, in characters.")
    max_summary_chars: Int = Field(ge=1, description="The longest summary line kept as a query, in characters.")
    min_body_chars: Int = Field(ge=1, description="The shortest docstring body kept as a page, in characters.")
    max_body_chars: Int = Field(ge=1, description="The longest docstring body kept as a page, in characters.")
    num_train_pairs: Int = Field(ge=1, description="Query-page pairs drawn for training.")
    num_eval_queries: Int = Field(ge=1, description="Held-out queries, each with its own page.")
    num_eval_pages: Int = Field(ge=1, description="Pages of the held-out corpus, the queries' pages among them.")
    seed: Int = Field(description="Seed of the split and the samples.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_summary_chars > self.max_summary_chars:
            raise ValueError("min_summary_chars must be <= max_summary_chars")
        if self.min_body_chars > self.max_body_chars:
            raise ValueError("min_body_chars must be <= max_body_chars")
        if self.num_eval_queries > self.num_eval_pages:
            raise ValueError("num_eval_queries must be <= num_eval_pages (each query has its own page)")
        return self


class FetchDataset(Section):
    """A dataset in the layout of tomaarsen/llamaindex-vdr-en-train-preprocessed: configs `train` and
    `eval`, one split each, a query column, a positive page column and hard-negative page columns."""

    train_config: str = Field("train", description="The config of the training rows.")
    eval_config: str = Field("eval", description="The config of the held-out rows.")
    split: str = Field("train", description="The split read from each config.")
    query_column: str = Field("query", description="The column of the query.")
    positive_column: str = Field("image", description="The column of the query's page image.")
    train_negative_columns: list[str] = Field(["negative_0"], description="Negatives kept for mine.source: given.")
    eval_negative_columns: list[str] = Field(
        ["negative_0", "negative_1", "negative_2", "negative_3"], description="Negatives added to the eval corpus."
    )
    max_train_rows: Int | None = Field(None, ge=1, description="Training rows read; null: every row.")
    max_eval_rows: Int | None = Field(None, ge=1, description="Held-out rows read; null: every row.")
    on_bad_row: Literal["error", "skip"] = Field("error", description="A row missing query or image: stop or drop it.")


class FetchHub(FetchDataset):
    source: Literal["hub"] = Field(description="A dataset on the Hugging Face Hub.")
    dataset: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="The dataset's owner/name on the Hugging Face Hub.")
    revision: str = Field(min_length=1, description="A branch, tag or commit; a commit sha pins the data.")


class FetchLocal(FetchDataset):
    source: Literal["local"] = Field(description="A dataset on disk.")
    path: str = Field(min_length=1, description="A folder per config: datasets.save_to_disk output or Parquet files.")


class FetchDocuments(Section):
    """Your own documents (vdr/data/documents.py): a folder of PDFs and PNG/JPEG page images, searched recursively;
    their queries are generated (the `generate` section)."""

    source: Literal["documents"] = Field(description="Your own documents, their queries generated.")
    path: str = Field(
        description="The folder of documents; relative: from the repository root (under exp --temp/--queue, from "
        "DVC's copy of it, so give an absolute path)."
    )
    eval_share: Float = Field(0.2, gt=0, lt=1, description="The share of documents held out (seeded), at least one.")
    max_pages_per_document: Int | None = Field(None, ge=1, description="First pages read per document; null: all.")
    seed: Int = Field(42, description="Seed of the held-out split.")
    on_bad_document: Literal["error", "skip"] = Field("error", description="An unreadable file: stop or skip it.")

    @field_validator("path")
    @classmethod
    def _path(cls, value):
        if not value.strip():
            raise ValueError("set the folder of your documents: `dvc exp run -S fetch.path=/path/to/pdfs`")
        return value


Fetch = Annotated[Union[FetchDocstrings, FetchHub, FetchLocal, FetchDocuments], Field(discriminator="source")]
