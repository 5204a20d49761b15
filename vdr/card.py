"""The published model's card: a template filled from params, metrics and provenance.

The card says what the model is (base model, loss, what it reads of a page), its results on the
held-out set (vdr/report.py's table and the NDCG@10-by-dimension picture), the data it was trained
on, the training parameters, and where it came from: the git commit, the DVC experiment, the DVC
hashes of the data and models, and the command that reproduces it. No secret ever reaches it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from string import Template

import yaml

from vdr.hub import hub_model_id
from vdr.lora import adapter_config, transformer_folder
from vdr.report import results_table

PICTURE = "ndcg_by_dim.svg"  # shipped next to the card in the published folder

CARD = Template("""---
$front_matter---

# Finetuned embedder for document-page retrieval

Finetuned from $base with MatryoshkaLoss over CachedMultipleNegativesRankingLoss on (query, page, hard negative) \
triplets. $adaptation$pages

## Results on the held-out set

NDCG@10, MRR@10 and Recall@10 (pytrec_eval, cosine similarity); the reranker rescores the finetuned embedder's top \
candidates. Then NDCG@10 at each Matryoshka dimension.

$results
$picture## Data

$data

## Training parameters

```yaml
$training```

## Provenance

- git commit: `$commit`
- DVC experiment: `$experiment`
$hashes
Reproduce:

```bash
$reproduce
```
""")


def git_commit() -> str:
    """HEAD's sha, with `-dirty` when tracked files differ from it; `unknown` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_params(params_path: str, commit: str) -> list[str]:
    """`-S key=value` for each parameter that differs from params.yaml in the git commit
    (what `dvc exp run -S` set)."""
    try:
        committed = subprocess.run(
            ["git", "show", f"{commit.removesuffix('-dirty')}:{params_path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    before = flatten(yaml.safe_load(committed) or {})
    now = flatten(yaml.safe_load(Path(params_path).read_text()) or {})
    return [
        f"-S '{key}={json.dumps(value)}'"
        for key, value in now.items()
        if before.get(key) != value and not key.startswith("publish.")
    ]


def pipeline_hashes(lock_path: Path) -> dict:
    """A digest of dvc.lock's stages before publish, and the DVC hashes of the data and models this model came from.

    The publish stage's own entry is left out of the digest: it is written after this card, and leaving
    it out keeps the card (and so the upload) the same when the same model is published again.
    """
    if not lock_path.exists():
        return {}
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    upstream = {name: stage for name, stage in stages.items() if name != "publish"}
    digest = hashlib.sha256(json.dumps(upstream, sort_keys=True).encode()).hexdigest()
    hashes = {"dvc.lock sha256 (stages before publish)": digest}
    for stage in upstream.values():
        for out in stage.get("outs", []):
            if out["path"].startswith(("data/", "models/")):
                hashes[out["path"]] = out.get("md5", "")
    return hashes


def documents_sentence(fetch_metrics: dict, generate_metrics: dict) -> str:
    """Your own documents: how many, their hash, the split, who wrote the queries and what the filters kept."""
    queries = generate_metrics.get("queries", {})
    model, backend = generate_metrics.get("model", "?"), generate_metrics.get("backend", "?")
    filtered = "; ".join(
        f"{split}: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counts.items())
        for split, counts in queries.items()
    )
    return (
        f"Training and evaluation data: your documents, {fetch_metrics['documents']} of them "
        f"(collection sha256 `{fetch_metrics['collection_sha256']}`), split by document: "
        f"{fetch_metrics['train_documents']} for training ({fetch_metrics['train_pages']} pages), "
        f"{fetch_metrics['eval_documents']} held out ({fetch_metrics['eval_pages']} pages), no page of a held-out "
        f"document trained on. Queries written by `{model}` ({backend} backend, prompt sha256 "
        f"`{generate_metrics.get('prompt_sha256', '?')}`) "
        f"for a sample of pages ({generate_metrics.get('pages_asked', {})}); queries generated and kept by the "
        f"filters: {filtered}. {generate_metrics.get('train_pairs', '?')} training pairs, evaluation on "
        f"{generate_metrics.get('eval_queries', '?')} queries over every page of the held-out documents."
    )


def data_sentence(fetch_metrics: dict, generate_metrics: dict | None = None) -> str:
    """Where the training and evaluation data came from, from fetch's metrics (and generate's)."""
    if fetch_metrics.get("source") == "documents":
        return documents_sentence(fetch_metrics, generate_metrics or {})
    if "source" in fetch_metrics:  # a dataset from the Hub or a local folder
        if "dataset" in fetch_metrics:
            origin = (
                f"`{fetch_metrics['dataset']}` at revision `{fetch_metrics['revision']}` "
                f"(commit `{fetch_metrics.get('commit', 'unknown')}`)"
            )
        else:
            origin = "a local dataset"
        return (
            f"Training and evaluation data: {origin}; {fetch_metrics['train_pairs']} training triplets, "
            f"evaluation on {fetch_metrics['eval_queries']} queries x {fetch_metrics['eval_pages']} pages."
        )
    versions = fetch_metrics.get("package_versions", {})
    return (
        "Queries and pages from the API docstrings of pinned packages ("
        + ", ".join(f"{name} {version}" for name, version in versions.items())
        + f"): the one-line summary is the query, the rest of the docstring the page; "
        f"{fetch_metrics.get('train_pairs', '?')} training pairs, "
        f"evaluation on {fetch_metrics.get('eval_queries', '?')} "
        f"queries over {fetch_metrics.get('eval_pages', '?')} pages of whole held-out sub-packages."
    )


def adaptation_sentence(train, base: str) -> str:
    """What was trained: every weight, a LoRA adapter this folder holds alone, or one merged into the base weights."""
    sentences = []
    lora = train.lora
    if lora is not None:
        targets = lora.target_modules if isinstance(lora.target_modules, str) else ", ".join(lora.target_modules)
        what = f"LoRA (r={lora.r}, alpha={lora.alpha:g}, dropout {lora.dropout:g}, target modules: {targets})"
        if lora.merge:
            sentences.append(f"Trained as a {what} adapter, merged into the base model's weights: a full model.")
        else:
            sentences.append(
                f"This is a {what} adapter, not a full model: loading it loads the base model {base} and puts "
                "the adapter on top (sentence-transformers with peft)."
            )
    if train.freeze_vision:
        sentences.append("The vision tower was kept frozen.")
    return "".join(f"{sentence} " for sentence in sentences)


def model_card(
    params,
    metrics: dict,
    fetch_metrics: dict,
    commit: str,
    experiment: str,
    overrides: list[str],
    hashes: dict,
    picture: bool = False,
    generate_metrics: dict | None = None,
) -> str:
    """The card's text; `picture`: the folder holds PICTURE (NDCG@10 by dimension) to show."""
    front_matter = {
        "library_name": "sentence-transformers",
        "pipeline_tag": "sentence-similarity",
        "tags": ["sentence-transformers", "visual-document-retrieval", "matryoshka", "dvc"],
        "language": ["en"],
        "license": "apache-2.0",
    }
    base_model = hub_model_id(params.models.embedder)
    lora = params.train_embedder.lora
    if base_model:
        front_matter["base_model"] = base_model
        if lora is not None and not lora.merge:
            front_matter["base_model_relation"] = "adapter"
    if lora is not None:
        front_matter["tags"] += ["peft", "lora"]
    training = {
        "models": params.models.model_dump(),
        "mine": params.mine.model_dump(),
        "train_embedder": params.train_embedder.model_dump(),
        "train_reranker": params.train_reranker.model_dump(),
    }
    if params.models.page_input == "image":
        pages = "The model reads page screenshots."
    elif params.fetch.source == "documents":
        pages = "PDF pages were rasterised; text models read the page's text layer (OCR where a page has none)."
    else:
        pages = "Pages were typeset to PDF and rasterised; text models read the page's text layer."
    reproduce = f"git checkout {commit.removesuffix('-dirty')} && " + (
        f"dvc exp run {' '.join(overrides)}" if overrides else "dvc repro"
    )
    base = f"`{params.models.embedder}`" + (
        f" ([{base_model}](https://huggingface.co/{base_model}))" if base_model else ""
    )
    return CARD.substitute(
        front_matter=yaml.safe_dump(front_matter, sort_keys=False),
        base=base,
        adaptation=adaptation_sentence(params.train_embedder, f"`{base_model or params.models.embedder}`"),
        pages=pages,
        results=results_table(metrics),
        picture=f"![NDCG@10 by embedding dimension]({PICTURE})\n\n" if picture else "",
        data=data_sentence(fetch_metrics, generate_metrics),
        training=yaml.safe_dump(training, sort_keys=False),
        commit=commit,
        experiment=experiment,
        hashes="".join(f"- {key}: `{value}`\n" for key, value in hashes.items()),
        reproduce=reproduce,
    )


def set_adapter_base(folder: Path, base: str | None) -> None:
    """A published LoRA adapter names its base model by its Hub id (when it has one), so that it loads anywhere;
    params.yaml may name it as a `pkg:` or a folder only this machine has."""
    config = adapter_config(folder)
    if config is None or base is None:
        return
    config["base_model_name_or_path"] = base
    path = transformer_folder(folder) / "adapter_config.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def set_truncate_dim(folder: Path, truncate_dim: int | None) -> None:
    """publish.truncate_dim becomes the published model's default output size
    (sentence-transformers reads it at load)."""
    if truncate_dim is None:
        return
    config_path = folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config["truncate_dim"] = truncate_dim
    config_path.write_text(json.dumps(config, indent=2) + "\n")
