"""Late interaction (ColBERT-style multi-vector retrieval): one embedding per token, pages ranked by MaxSim.

    model = load_multivector(name, params.models, projection_dim=128, seed=42, query_length=64, document_length=128)
    pages = encode_pages(model, documents, batch_size)              # a TokenIndex: every page's tokens, encoded once
    queries = encode_queries(model, query_texts, batch_size)
    indices, scores = maxsim_search(queries, pages, top_k, max_memory_mb)   # as vdr/search.py search returns them

The model is a sentence-transformers MultiVectorEncoder. From a plain checkpoint (a sentence-transformers or
transformers folder, a Hub id, `pkg:<package>/<folder>`: found as vdr/models.py finds any model) it gets a fresh
projection of its token vectors to `projection_dim`, drawn from `seed`, so the untrained base model and the start of
training are the same model. A saved multi-vector model (a MultiVectorEncoder or ColBERT folder) loads as it is.

MaxSim of a query and a page: for each query token, its best inner product with any page token, summed over the
query tokens (token vectors are unit length). Pages are encoded ONCE into a `TokenIndex`: every page's token
vectors in one 2-D array (float16 by default, float32 on demand) with each page's offsets, so the index costs its
tokens x dims x bytes plus 8 bytes per page, and `nbytes` measures it. `maxsim_search` scores every query against a
block of pages at a time (sentence-transformers' `maxsim`, float32 accumulation) and keeps a running top-k per query
with vdr/search.py's exact merge, so memory stays within `max_memory_mb` whatever the number of pages.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vdr.finite import model_name, require_finite
from vdr.lora import load_adapter, transformer_folder
from vdr.models import (
    adapter_base,
    check_model_source,
    check_processor,
    check_token_limit,
    from_hub,
    loading_kwargs,
    require_images,
    resolve_model,
)
from vdr.search import BYTES_PER_SCORE, DEFAULT_MAX_MEMORY_MB, top_k_of_blocks

INDEX_DTYPES = ("float16", "float32")
DECODED_PAGES_PER_CHUNK = 256  # pages encoded (and screenshots decoded) at a time, as vdr/retrieval.py does
NOT_FINITE_HINT = (
    "the multi-vector model's weights are probably NaN: if it is the finetuned one (models/multivector), its "
    "training diverged, so retrain it with a lower train_multivector.learning_rate or projection_learning_rate"
)
LATE_INTERACTION_TYPES = ("MultiVectorEncoder", "ColBERT")  # config_sentence_transformers.json model_type


# 1. The model


def load_multivector(
    name: str,
    models=None,
    *,
    projection_dim: int | None = None,
    seed: int = 0,
    query_length: int | None = None,
    document_length: int | None = None,
    key: str = "models.embedder",
):
    """A MultiVectorEncoder from a folder, a Hub id or `pkg:<package>/<folder>`; `models`: params.yaml's section
    (its model_kwargs, processor_kwargs and page_input, checked as vdr/models.py checks them).

    A saved multi-vector model loads as it is. Any other checkpoint becomes one: its token vectors (after the
    checkpoint's own Dense head, if it has one) go through a fresh linear projection to `projection_dim` (no bias,
    weights drawn from `seed` as torch draws a Linear layer's), then the library's scoring mask and unit length.
    `query_length` / `document_length`: the token limits of queries and pages (None: the model's own limit; never
    set one for page screenshots, whose image tokens must not be cut). A folder holding a LoRA adapter (a training
    stage's `lora` with `merge: false`) loads its base model this way, then the adapter and the trained projection.
    """
    from sentence_transformers import MultiVectorEncoder

    kwargs = loading_kwargs(models) if models is not None else {}
    path = resolve_model(name, key)
    check_model_source(name, path, key)
    if models is not None and models.page_input == "image" and document_length is not None:
        raise ValueError(
            f"{key}: pages are read as images (models.page_input: image), and a document_length of "
            f"{document_length} tokens would cut their image tokens; set train_multivector.document_length: null"
        )
    if (base := adapter_base(path, key)) is not None:
        saved = saved_adapter_settings(Path(path))  # what is not given: as the adapter was trained and saved
        model = load_multivector(
            base,
            models,
            projection_dim=projection_dim or saved["projection_dim"],
            seed=seed,
            query_length=query_length if query_length is not None else saved["query_length"],
            document_length=document_length if document_length is not None else saved["document_length"],
            key=f"{key} (the base of the adapter {name})",
        )
        load_adapter(model, Path(path), key)
        return model
    with from_hub(name, path, key):
        saved = is_late_interaction(path)
        own_head = has_dense_head(path)
        model = MultiVectorEncoder(
            path,
            model_kwargs=kwargs.get("model_kwargs") or None,
            processor_kwargs=kwargs.get("processor_kwargs") or None,
        )
    if not saved:
        if projection_dim is None:
            raise ValueError(
                f"{key}: '{name}' is not a multi-vector model, so it needs a fresh projection; "
                "set train_multivector.projection_dim"
            )
        fresh_projection(model, projection_dim, seed, replace_library_head=not own_head)
    check_processor(model, kwargs.get("processor_kwargs"), key)
    if models is not None and models.page_input == "image":
        require_images(model, key)
    transformer = model[0]
    if query_length is not None:
        check_token_limit(model, query_length, "train_multivector.query_length:")
        transformer.query_length = query_length
    if document_length is not None:
        check_token_limit(model, document_length, "train_multivector.document_length:")
        transformer.document_length = document_length
    return model


def saved_adapter_settings(folder: Path) -> dict:
    """A multi-vector model saved as a LoRA adapter (lora.merge: false): the width of its trained projection and the
    token limits it was saved with, which its base model is rebuilt with."""
    modules = json.loads((folder / "modules.json").read_text())
    projection = [entry["path"] for entry in modules if entry["type"].endswith("Dense")][-1]
    width = json.loads((folder / projection / "config.json").read_text())["out_features"]
    lengths = json.loads((transformer_folder(folder) / "sentence_bert_config.json").read_text())
    return {
        "projection_dim": width,
        "query_length": lengths.get("query_length"),
        "document_length": lengths.get("document_length"),
    }


def is_late_interaction(path: str) -> bool:
    """Whether the checkpoint is a multi-vector model already (a MultiVectorEncoder or PyLate save, a Stanford
    ColBERT, a transformers `...ForRetrieval` model such as ColPali): then it keeps its own projection."""
    from sentence_transformers.util import load_file_path

    settings = load_file_path(path, "config_sentence_transformers.json")
    if settings is not None and json.loads(Path(settings).read_text()).get("model_type") in LATE_INTERACTION_TYPES:
        return True
    config = load_file_path(path, "config.json")
    architectures = (json.loads(Path(config).read_text()).get("architectures") or []) if config else []
    return any(a == "HF_ColBERT" or a.endswith("ForRetrieval") for a in architectures)


def has_dense_head(path: str) -> bool:
    """Whether a sentence-transformers checkpoint has a Dense module of its own (kept, at token level, before the
    fresh projection); without one, the library appends a random projection, which the fresh one replaces."""
    from sentence_transformers.util import load_file_path

    modules = load_file_path(path, "modules.json")
    if modules is None:
        return False
    return any(entry.get("type", "").endswith("Dense") for entry in json.loads(Path(modules).read_text()))


def fresh_projection(model, projection_dim: int, seed: int, replace_library_head: bool) -> None:
    """Put a seeded linear projection (no bias) to `projection_dim` right before the scoring mask, in place: instead
    of the random one the library added (`replace_library_head`), or after the checkpoint's own Dense head."""
    import torch
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    modules = list(model)
    mask = next((i for i, m in enumerate(modules) if isinstance(m, MultiVectorMask)), None)
    if mask is None or mask < 1:
        raise ValueError(f"{model_name(model)}: no MultiVectorMask after a Transformer; not a multi-vector model")
    at = mask - 1 if replace_library_head else mask
    if replace_library_head and not isinstance(modules[at], Dense):
        raise ValueError(f"{model_name(model)}: expected the library's projection before the scoring mask")
    width = modules[at - 1].get_embedding_dimension()
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(width)  # torch's default for a Linear layer: uniform in +-1/sqrt(fan_in)
    weight = (torch.rand(projection_dim, width, generator=generator) * 2 - 1) * bound
    projection = Dense(
        width,
        projection_dim,
        bias=False,
        activation_function=torch.nn.Identity(),
        init_weight=weight,
        module_input_name="token_embeddings",
    )
    reference = next(modules[0].parameters())
    projection.to(device=reference.device, dtype=reference.dtype)
    if replace_library_head:
        model[at] = projection
    else:
        model.insert(at, projection)


def projection_index(model) -> int:
    """The position of the projection in the model: its last Dense module."""
    from sentence_transformers.base.modules.dense import Dense

    found = [i for i, module in enumerate(model) if isinstance(module, Dense)]
    if not found:
        raise ValueError(f"{model_name(model)}: the multi-vector model has no projection (Dense) module")
    return found[-1]


def projection_parameters(model, prefix: str = "model.") -> str:
    """A regular expression for the projection's parameter names as a loss sees them (the loss holds the model as
    `model`): the trainer's learning_rate_mapping gives them their own learning rate."""
    return rf"^{re.escape(prefix)}{projection_index(model)}\."


# 2. Token embeddings, encoded once


@dataclass(frozen=True)
class TokenIndex:
    """Every input's token vectors in one 2-D array: input i's are rows offsets[i]:offsets[i + 1] of `tokens`."""

    tokens: np.ndarray  # (total tokens, dims), float16 or float32
    offsets: np.ndarray  # int64, one more than the inputs

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray], dtype: str = "float32") -> TokenIndex:
        if dtype not in INDEX_DTYPES:
            raise ValueError(f"index dtype must be one of {INDEX_DTYPES}, got {dtype!r}")
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        dims = arrays[0].shape[1] if arrays else 0
        tokens = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros((0, dims), dtype=dtype)
        return cls(tokens, offsets)

    @classmethod
    def concatenate(cls, parts: list[TokenIndex]) -> TokenIndex:
        starts = np.cumsum([0] + [len(part.tokens) for part in parts[:-1]])
        offsets = np.concatenate([parts[0].offsets[:1]] + [part.offsets[1:] + s for part, s in zip(parts, starts)])
        return cls(np.concatenate([part.tokens for part in parts]), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    @property
    def nbytes(self) -> int:
        """The index's size: the token vectors and the offsets."""
        return int(self.tokens.nbytes + self.offsets.nbytes)

    @property
    def tokens_per_item(self) -> float:
        return len(self.tokens) / max(len(self), 1)


def encode_pages(model, documents, batch_size: int, dtype: str = "float16") -> TokenIndex:
    """Every page's token vectors, in order, a chunk of pages at a time (screenshots that decode when read are
    decoded a chunk at a time too); each chunk is checked for NaN and stored as `dtype` as it comes."""
    parts = []
    for start in range(0, len(documents), DECODED_PAGES_PER_CHUNK):
        chunk = documents[start : start + DECODED_PAGES_PER_CHUNK]
        arrays = model.encode_document(chunk, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True)
        part = TokenIndex.from_arrays([np.asarray(a, dtype=np.float32) for a in arrays], dtype)
        what = f"the page token embeddings of {model_name(model)} (pages {start} to {start + len(chunk) - 1})"
        require_finite(part.tokens, what, NOT_FINITE_HINT)
        parts.append(part)
    if not parts:
        raise ValueError("no pages to encode")
    return TokenIndex.concatenate(parts)


def encode_queries(model, texts: list[str], batch_size: int) -> TokenIndex:
    """Every query's token vectors, float32."""
    arrays = model.encode_query(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True)
    index = TokenIndex.from_arrays([np.asarray(a, dtype=np.float32) for a in arrays])
    require_finite(index.tokens, f"the query token embeddings of {model_name(model)}", NOT_FINITE_HINT)
    return index


# 3. MaxSim search in bounded memory

SHARES = 4  # the bound is split between a block's float32 page tokens, its score block and maxsim's intermediates


def maxsim_search(
    queries: TokenIndex, pages: TokenIndex, top_k: int, max_memory_mb: float = DEFAULT_MAX_MEMORY_MB
) -> tuple[np.ndarray, np.ndarray]:
    """The top_k pages of every query by MaxSim: (indices int64 [Q, k], scores float32 [Q, k]), best first, equal
    scores to the lower page index (k = min(top_k, pages)), as vdr/search.py search returns them.

    Pages are scored a block at a time (`page_blocks`): the block's tokens as float32, every query against them
    with sentence-transformers' `maxsim` (its own chunks within a share of the bound), then merged into the running
    top-k. Never a queries x pages x tokens tensor beyond one chunk of one block."""
    import torch
    from sentence_transformers.util.similarity import maxsim

    if len(queries) == 0 or len(pages) == 0:
        raise ValueError(f"nothing to search: {len(queries)} queries, {len(pages)} pages")
    if queries.tokens.shape[1] != pages.tokens.shape[1]:
        raise ValueError(
            f"dimension mismatch: query tokens have {queries.tokens.shape[1]} dims, page tokens "
            f"{pages.tokens.shape[1]}"
        )
    if not (isinstance(max_memory_mb, (int, float)) and 0 < max_memory_mb < math.inf):
        raise ValueError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}")
    k = min(int(top_k), len(pages))
    budget = max_memory_mb * 2**20 / SHARES
    chunk_elements = max(1, int(budget / 4 / 2))  # float32 elements; maxsim's max and sum need about as much again
    query_tokens = [torch.from_numpy(np.ascontiguousarray(queries[i], dtype=np.float32)) for i in range(len(queries))]

    def blocks() -> Iterator[tuple[int, int, np.ndarray]]:
        for start, stop in page_blocks(pages, len(queries), budget):
            block = np.asarray(pages.tokens[pages.offsets[start] : pages.offsets[stop]], dtype=np.float32)
            cuts = pages.offsets[start : stop + 1] - pages.offsets[start]
            page_tokens = [torch.from_numpy(block[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
            with torch.inference_mode():
                scores = maxsim(query_tokens, page_tokens, chunk_elements=chunk_elements)
            yield 0, start, scores.numpy().astype(np.float32, copy=False)

    return top_k_of_blocks(blocks(), len(queries), k)


def page_blocks(pages: TokenIndex, num_queries: int, budget_bytes: float) -> Iterator[tuple[int, int]]:
    """(first page, end page) of consecutive blocks: each block's float32 tokens and its score block's working set
    (num_queries x pages x BYTES_PER_SCORE) fit `budget_bytes` each; at least one page per block."""
    dims = pages.tokens.shape[1]
    max_pages = max(1, int(budget_bytes // (num_queries * BYTES_PER_SCORE)))
    max_tokens = max(1, int(budget_bytes // (dims * 4)))
    start = 0
    while start < len(pages):
        stop = start + 1
        limit = min(len(pages), start + max_pages)
        # the furthest end whose tokens fit (at least one page)
        fits = int(np.searchsorted(pages.offsets, pages.offsets[start] + max_tokens, side="right")) - 1
        stop = max(stop, min(limit, fits))
        yield start, stop
        start = stop


# 4. A model's row on a held-out set (stages/evaluate_multivector.py, vdr-eval)


def evaluate_multivector(model, evalset, documents, batch_size: int, index_dtype: str, max_memory_mb: float):
    """The pages encoded once into a token index, every query encoded and searched by MaxSim, the top RUN_DEPTH pages
    of each scored with pytrec_eval. Returns (metrics with what the index costs: bytes and tokens per page, token
    dims, ms per query of encoding the query and searching; (indices, scores) of the top RUN_DEPTH)."""
    from vdr.evaluation import RUN_DEPTH, ir_metrics, to_run

    pages = encode_pages(model, documents, batch_size, index_dtype)
    started = time.perf_counter()
    queries = encode_queries(model, evalset.query_texts, batch_size)
    indices, scores = maxsim_search(queries, pages, RUN_DEPTH, max_memory_mb)
    elapsed = time.perf_counter() - started
    metrics = {
        **ir_metrics(to_run(evalset.query_ids, evalset.corpus_ids, indices, scores), evalset.qrels),
        "index_bytes_per_page": round(pages.nbytes / len(pages), 1),
        "tokens_per_page": round(pages.tokens_per_item, 1),
        "token_dims": int(pages.tokens.shape[1]),
        "ms_per_query": round(1000 * elapsed / max(len(evalset.query_ids), 1), 1),
    }
    return metrics, (indices, scores)
