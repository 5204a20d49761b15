"""The typed schema of params.yaml: every stage loads its sections through here.

A typo, a wrong type or an out-of-range value stops the stage with one message that names the key,
the value found and what is allowed. No number may be infinite or NaN (YAML `.inf`, `.nan`): such a
parameter can only make training diverge or fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelKwargs(Section):
    """Passed to `from_pretrained` of both models (`model_kwargs=`). null leaves the library default."""

    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = None
    # the weights' dtype; bfloat16 weights are the published recipe, float32 weights + `bf16: true`
    # (autocast) in the training sections are the alternative later sentence-transformers docs advise
    dtype: Literal["float32", "bfloat16", "float16", "auto"] | None = None


class ImageSize(Section):
    shortest_edge: int = Field(ge=1)  # transformers 5 spelling of min_pixels
    longest_edge: int = Field(ge=1)  # ... and of max_pixels

    @model_validator(mode="after")
    def _order(self):
        if self.shortest_edge > self.longest_edge:
            raise ValueError("shortest_edge (min pixels) must be <= longest_edge (max pixels)")
        return self


class ProcessorKwargs(Section):
    """Passed to the processor of both models (`processor_kwargs=`); checked after loading."""

    size: ImageSize | None = None


class Models(Section):
    embedder: str = Field(min_length=1)
    reranker: str = Field(min_length=1)
    page_input: Literal["text", "image"] = "text"  # how the models read a page: its text layer or its screenshot
    model_kwargs: ModelKwargs = ModelKwargs()
    processor_kwargs: ProcessorKwargs = ProcessorKwargs()


class FetchDocstrings(Section):
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


class FetchDataset(Section):
    """A dataset in the layout of tomaarsen/llamaindex-vdr-en-train-preprocessed: configs `train` and
    `eval`, one split each, a query column, a positive page column and hard-negative page columns."""

    train_config: str = "train"
    eval_config: str = "eval"
    split: str = "train"
    query_column: str = "query"
    positive_column: str = "image"
    train_negative_columns: list[str] = ["negative_0"]  # kept for training (mine.source: given)
    eval_negative_columns: list[str] = ["negative_0", "negative_1", "negative_2", "negative_3"]  # extra eval pages
    max_train_rows: int | None = Field(default=None, ge=1)  # null: every row
    max_eval_rows: int | None = Field(default=None, ge=1)
    on_bad_row: Literal["error", "skip"] = (
        "error"  # an empty query or a missing page image: stop, or drop the row and count it
    )


class FetchHub(FetchDataset):
    source: Literal["hub"]
    dataset: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")  # owner/name on the Hugging Face Hub
    revision: str = Field(min_length=1)  # a commit sha pins the data; fetch records the commit it resolved


class FetchLocal(FetchDataset):
    source: Literal["local"]
    path: str = Field(min_length=1)  # a folder per config: `datasets.save_to_disk` output or *.parquet files


class FetchDocuments(Section):
    """Your own documents (vdr/data/documents.py): a folder of PDFs and PNG/JPEG page images, searched recursively;
    their queries are generated (the `generate` section)."""

    source: Literal["documents"]
    path: str  # the folder; relative paths are read from the repository root
    eval_share: float = Field(default=0.2, gt=0, lt=1)  # the share of DOCUMENTS held out (seeded), at least one
    max_pages_per_document: int | None = Field(default=None, ge=1)  # null: every page
    seed: int = 42
    on_bad_document: Literal["error", "skip"] = "error"  # an encrypted, corrupt or empty file: stop, or skip it

    @field_validator("path")
    @classmethod
    def _path(cls, value):
        if not value.strip():
            raise ValueError("set the folder of your documents: `dvc exp run -S fetch.path=/path/to/pdfs`")
        return value


Fetch = Annotated[Union[FetchDocstrings, FetchHub, FetchLocal, FetchDocuments], Field(discriminator="source")]


class Generate(Section):
    """Queries for pages that have none (stages/generate.py, vdr/data/querygen.py): fetch.source documents only.
    backend none: the source's own queries pass through unchanged."""

    backend: Literal["none", "openai", "transformers"] = "none"
    base_url: str = ""  # openai: the server's OpenAI-compatible root, e.g. http://localhost:8000/v1
    model: str = ""  # the model the server serves (openai), or a Hub id / local folder (transformers)
    prompt: str = ""  # {n} becomes queries_per_page; empty: the default prompt (vdr/data/querygen.py DEFAULT_PROMPT)
    queries_per_page: int = Field(default=2, ge=1, le=20)
    with_text_layer: bool = False  # also send the page's text layer, for models that read images badly
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=256, ge=8)
    seed: int = 42
    train_pages: int | None = Field(default=None, ge=1)  # pages of the training documents asked (seeded); null: all
    eval_pages: int | None = Field(default=None, ge=1)  # held-out pages asked; the eval corpus is all their pages
    concurrency: int = Field(default=4, ge=1)  # openai: requests in flight
    timeout_s: float = Field(default=120, gt=0)  # openai: per request
    max_retries: int = Field(default=4, ge=0)  # openai: timeouts, connection errors, 429 and 5xx, with backoff
    batch_size: int = Field(default=8, ge=1)  # transformers: pages per generate() call
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # transformers: the model's weights
    on_bad_page: Literal["error", "skip"] = "skip"  # a page whose answers failed or held no query: stop, or count it
    min_query_chars: int = Field(default=10, ge=1)
    max_query_chars: int = Field(default=300, ge=1)
    consistency_top_k: int | None = Field(default=20, ge=1)  # keep a training query only if the base embedder ranks
    # its page in the top k of the training pages (InPars / Promptagator); null: no such filter
    filter_eval_queries: bool = False  # the same filter on held-out queries (it favours the base embedder: off)

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


class Render(Section):
    dpi: int | None = Field(default=None, ge=36, le=600)  # typesetting documents that arrive as text
    shard_size: int = Field(ge=1)
    workers: int = Field(ge=1)
    max_pixels: int | None = Field(default=None, ge=784)  # given screenshots: RGB, larger ones scaled down to this
    on_bad_page: Literal["error", "skip"] = (
        "error"  # a page that cannot be typeset or decoded: stop, or drop it and count it
    )


class Mine(Section):
    source: Literal["given", "mined"] = "mined"  # given: the dataset's own negatives; mined: with the base embedder
    max_seq_length: int | None = Field(default=None, ge=8)
    num_negatives: int = Field(ge=1)
    range_min: int = Field(ge=0)
    range_max: int = Field(ge=1)
    relative_margin: float = Field(ge=0, lt=1)
    sampling_strategy: Literal["top", "random"] = (
        "top"  # the best-ranked candidates, or a seeded random draw from the range
    )
    batch_size: int = Field(ge=1)
    seed: int = 42

    @model_validator(mode="after")
    def _range(self):
        if self.range_max - self.range_min < self.num_negatives:
            raise ValueError("range_max - range_min must be at least num_negatives")
        return self


class MineReranker(Mine):
    """Negatives for the reranker: mined like `mine`, but with the embedder whose top-k the reranker will rerank."""

    embedder: Literal["finetuned", "base"] = "finetuned"


Steps = int | float | None  # a count (>= 1) or a fraction of the total steps (< 1); null: never


class Lora(Section):
    """LoRA (vdr/training/lora.py): train low-rank adapters on the chosen linear layers; the base weights stay
    frozen."""

    r: int = Field(ge=1)  # the adapters' rank
    alpha: float = Field(gt=0)  # the adapters' scale is alpha / r
    dropout: float = Field(default=0.0, ge=0, lt=1)  # on the adapters' input, during training only
    # module names (the last part of a layer's name, e.g. q_proj, v_proj), or every linear layer but the output one
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    merge: bool = False  # false: save and publish the adapter only (small); true: merged into the base, a full model

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

    epochs: float = Field(gt=0, le=1000)  # a fraction trains part of an epoch; the bound catches a runaway value
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0, lt=1)
    warmup_ratio: float = Field(ge=0, le=1)
    bf16: bool = False  # bf16 autocast
    logging_steps: int | float = Field(default=1, gt=0)
    eval_steps: Steps = Field(default=None, gt=0)  # the evaluator every n steps (or fraction); null: see each stage
    save_steps: Steps = Field(default=None, gt=0)  # checkpoints, to resume a killed run; null: none
    save_total_limit: int | None = Field(default=None, ge=1)
    seed: int
    num_processes: int = Field(default=1, ge=1)  # per node
    # > 1: torchrun across machines (vdr/training/launch.py); each node's rank comes from the environment (Slurm,
    # PyTorchJob)
    num_nodes: int = Field(default=1, ge=1)
    # node 0's host:port; null: MASTER_ADDR and MASTER_PORT (or PET_MASTER_*) of the environment
    rdzv_endpoint: str | None = Field(default=None, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")
    lora: Lora | None = None  # null: full finetuning; a section: LoRA adapters, the base weights frozen
    freeze_vision: bool = False  # keep the vision tower's weights as they are (a multimodal model only)

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
    max_train_samples: int | None = Field(ge=2)  # null: every triplet
    max_seq_length: int | None = Field(ge=8)  # null: the model's own limit (never truncate image tokens)
    batch_size: int = Field(ge=2)
    mini_batch_size: int = Field(ge=1)
    batch_sampler: Literal["batch_sampler", "no_duplicates", "no_duplicates_hashed"] = "no_duplicates"
    evaluator_name: str = "eval"
    evaluator_batch_size: int = Field(default=64, ge=1)
    matryoshka_dims: list[int] = Field(min_length=1)
    gather_across_devices: bool = False

    @model_validator(mode="after")
    def _dims(self):
        if (
            any(d <= 0 for d in self.matryoshka_dims)
            or sorted(self.matryoshka_dims, reverse=True) != self.matryoshka_dims
        ):
            raise ValueError("matryoshka_dims must be positive and in decreasing order")
        return self


class TrainReranker(Training):
    max_train_queries: int | None = Field(ge=1)  # null: every query
    negatives_per_positive: int = Field(ge=1)
    pos_weight: float = Field(default=1.0, gt=0)  # BinaryCrossEntropyLoss: weight of the positive (label 1) pairs
    eval_queries: int = Field(
        default=0, ge=0
    )  # held out of training for CrossEncoderRerankingEvaluator; 0: no evaluator
    max_length: int | None = Field(ge=8)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    # keep only the first n Transformer layers of models.reranker (a smaller, faster reranker); null: all of them
    num_layers: int | None = Field(default=None, ge=1)


class TrainMultivector(Training):
    """Late interaction (stages/train_multivector.py, stages/evaluate_multivector.py, vdr/models/multivector.py):
    models.embedder as a MultiVectorEncoder, its token vectors through a fresh projection to projection_dim, pages
    ranked by MaxSim. enabled: false (the cpu default), null or absent: no late interaction in this run, and its two
    stages only write empty outputs."""

    enabled: bool = True  # false: train_multivector and evaluate_multivector write empty outputs in about a second
    max_train_samples: int | None = Field(default=None, ge=2)  # null: every triplet
    batch_size: int = Field(ge=2)
    # CachedMultiVectorMultipleNegativesRankingLoss embeds this many inputs at a time (GradCache); null: the plain
    # MultiVectorMultipleNegativesRankingLoss, the whole batch at once
    mini_batch_size: int | None = Field(default=None, ge=1)
    batch_sampler: Literal["batch_sampler", "no_duplicates", "no_duplicates_hashed"] = "no_duplicates"
    projection_dim: int = Field(default=128, ge=1)  # the fresh projection's output: the size of every token vector
    projection_learning_rate: float | None = Field(default=None, gt=0, lt=1)  # the projection's; null: learning_rate
    max_grad_norm: float = Field(default=1.0, gt=0)  # gradient clipping
    scale: float = Field(default=1.0, gt=0)  # the loss's 1 / temperature on MaxSim scores
    query_length: int | None = Field(default=None, ge=4)  # tokens per query; null: the model's limit
    document_length: int | None = Field(default=None, ge=8)  # tokens per page; null: the model's (always for images)
    evaluator_name: str = "eval"
    evaluator_batch_size: int = Field(default=32, ge=1)
    encode_batch_size: int = Field(default=32, ge=1)  # evaluate_multivector: inputs per encoding batch
    index_dtype: Literal["float16", "float32"] = "float16"  # evaluate_multivector: how page token vectors are stored

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


class Evaluate(Section):
    max_seq_length: int | None = Field(ge=8)
    batch_size: int = Field(ge=1)
    top_k: int = Field(ge=1)  # the finetuned embedder's top-k pages are reranked
    # the reranked order: fusion_weight x reranker score + (1 - fusion_weight) x embedder score, each standardised
    # over the query's top-k; 1.0 ranks by the reranker alone (reported too, whatever the weight)
    fusion_weight: float = Field(default=1.0, ge=0, le=1)
    base_reranker: bool = (
        False  # also rerank with models.reranker untouched (only meaningful when it is a trained reranker)
    )
    dims: list[int] = Field(min_length=1)

    @model_validator(mode="after")
    def _dims(self):
        if any(d <= 0 for d in self.dims):
            raise ValueError("dims must be positive")
        return self


DEVICE = re.compile(r"^(cpu|mps|(cuda|xpu|npu)(:\d+)?)$")  # a torch device name, as sentence-transformers takes it


def check_devices(value, key: str | None = None, lists: str = "[cuda:0, cuda:1] or [cpu, cpu]"):
    """`auto`, or a non-empty list of torch device names; otherwise ValueError (naming `key` when given)."""
    if value == "auto":
        return value
    where = f"{key}: " if key else ""
    example = f"auto, or a list of devices such as {lists}"
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{where}must be {example}; got {value!r}")
    bad = [device for device in value if not (isinstance(device, str) and DEVICE.match(device))]
    if bad:
        raise ValueError(f"{where}{bad[0]!r} is not a device name (cpu, cuda:N, mps, xpu:N, npu:N); must be {example}")
    return list(value)


class Encode(Section):
    """Where and how the embedders encode and the reranker scores (embed_base, mine, mine_reranker, evaluate, and
    evaluate_multivector): vdr/retrieval/devices.py."""

    devices: Union[Literal["auto"], list[str]] = "auto"  # auto: every visible CUDA device when there are 2 or more
    # encoding and reranking under torch's bf16 autocast (the weights and the outputs stay float32): about 3x faster
    # encoding on a CPU with bf16 instructions, the same NDCG@10 to 3 decimals (docs/timing.md)
    bf16: bool = False

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value):
        return check_devices(value)


class Search(Section):
    """Exact search (vdr/retrieval/search.py) and page embeddings in bounded memory (mine, mine_reranker, evaluate)."""

    max_memory_mb: float = Field(default=1024, gt=0)  # MiB; page embeddings above it go to a temporary .npy memmap


class Publish(Section):
    push: bool
    repo_id: str
    private: bool
    truncate_dim: int | None = Field(default=None, ge=1)  # the published model's default output size
    multivector_repo_id: str | None = None  # where the multi-vector model goes when late interaction is on

    @model_validator(mode="after")
    def _repo(self):
        if self.push and "/" not in self.repo_id:
            raise ValueError("push: true needs repo_id as 'owner/name'")
        if self.push and self.multivector_repo_id is not None:
            if "/" not in self.multivector_repo_id:
                raise ValueError("push: true needs multivector_repo_id as 'owner/name' (or null)")
            if self.multivector_repo_id == self.repo_id:
                raise ValueError(
                    "multivector_repo_id: the multi-vector model needs a repo of its own, not repo_id's, where the "
                    "dense embedder goes"
                )
        return self


class Params(Section):
    profile_name: str = "cpu"  # which conf/profile composed this file; a record only, no stage reads it
    models: Models
    fetch: Fetch
    render: Render
    generate: Generate
    mine: Mine
    mine_reranker: MineReranker
    train_embedder: TrainEmbedder
    train_reranker: TrainReranker
    train_multivector: TrainMultivector | None = None  # late interaction; enabled: false, null or absent: off
    evaluate: Evaluate
    encode: Encode
    search: Search
    publish: Publish

    @property
    def late_interaction(self) -> TrainMultivector | None:
        """The train_multivector section when late interaction is part of this run; else None."""
        section = self.train_multivector
        return section if section is not None and section.enabled else None

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
        if self.train_reranker.negatives_per_positive > self.mine_reranker.num_negatives:
            raise ValueError(
                f"train_reranker.negatives_per_positive ({self.train_reranker.negatives_per_positive}) "
                f"exceeds mine_reranker.num_negatives ({self.mine_reranker.num_negatives}): "
                "the reranker can only use the negatives mine_reranker keeps; lower the first or raise the second"
            )
        return self


class ParamsError(ValueError):
    pass


FETCH_SOURCES = ("docstrings", "hub", "local", "documents")


def _describe(error: dict) -> str:
    location = list(error["loc"])
    if location[:1] == ["fetch"] and len(location) > 1 and location[1] in FETCH_SOURCES:
        del location[1]  # pydantic names the union member; the user knows it as fetch.source
    if error["type"] == "union_tag_invalid":
        location.append("source")
    if location[-1:] in (["int"], ["float"]):
        del location[-1]  # the member of a `int | float` union (save_steps: a count or a fraction)
    key = ".".join(str(part) for part in location)
    if not key:  # a check across sections names its keys itself
        return error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (a typo?); remove it or check the spelling against params.yaml's sections"
    elif error["type"] == "finite_number":
        message = "must be a finite number; YAML .inf and .nan are not allowed"
    elif error["type"] == "missing":
        return f"{key}: missing; add it to params.yaml"
    elif error["type"] == "value_error":  # a check across the keys of one section names them itself
        return f"{key}: {message.removeprefix('Value error, ')}"
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
        problems = "\n  ".join(dict.fromkeys(_describe(e) for e in error.errors()))  # once per union member
        raise ParamsError(f"{path}: invalid parameters:\n  {problems}") from None
