"""The published models' cards: templates filled from params, metrics and provenance.

`model_card` (the dense embedder) and `multivector_card` (the late-interaction model, when it is on) say what the
model is (base model, loss, what it reads of a page), its results on the held-out set (vdr/evaluation/report.py's
table; the
dense card adds the NDCG@10-by-dimension picture, the multi-vector card the index's cost), then, in the same words
for both, the data it was trained on, the training parameters, and where it came from: the git commit, the DVC
experiment, the DVC hashes of the data and models, and the command that reproduces it. No secret ever reaches them.
"""

from __future__ import annotations

from string import Template

import yaml

from vdr.evaluation.report import results_table
from vdr.publish.hub import hub_model_id

PICTURE = "ndcg_by_dim.svg"  # shipped next to the card in the published folder


DENSE_CARD = Template("""# Finetuned embedder for document-page retrieval

Finetuned from $base with MatryoshkaLoss over $loss on (query, page, hard negative) triplets. $adaptation$pages

## Results on the held-out set

NDCG@10, MRR@10 and Recall@10 (pytrec_eval, cosine similarity); the reranker rescores the finetuned embedder's top \
candidates. Then NDCG@10 at each Matryoshka dimension.

$results
$picture""")


MULTIVECTOR_CARD = Template("""# Finetuned multi-vector (late-interaction) model for document-page retrieval

A multi-vector model, ColBERT-style: it encodes a query or a page as one $dims-d vector per token, not one vector \
per page, and scores a query against a page by MaxSim (for each query token, its best inner product with any page \
token, summed over the query's tokens). It loads with sentence-transformers' `MultiVectorEncoder`:

```python
from sentence_transformers import MultiVectorEncoder

model = MultiVectorEncoder("$model_id")
query_embeddings = model.encode_query(["..."])  # one array of token vectors per query
page_embeddings = model.encode_document([$page_example])
scores = model.similarity(query_embeddings, page_embeddings)  # MaxSim
```

Finetuned from $base: its token vectors go through a fresh linear projection (no bias, drawn from seed $seed) to \
$dims dimensions, trained with $loss on (query, page, hard negative) triplets, the projection at learning rate \
$projection_learning_rate and the rest at $learning_rate. $adaptation$reading

## Results on the held-out set

NDCG@10, MRR@10 and Recall@10 (pytrec_eval) on the held-out set$held_out_size. The dense rows of the same run come \
first for comparison (one vector per page, cosine similarity). The multi-vector rows rank every page by MaxSim; the \
base multi-vector row is the base model with the same fresh projection, untrained. A reranker row rescores the top \
candidates of the model it names.

$results
## Index cost

Every page is indexed as its token vectors in $index_dtype, plus 8 bytes of offsets per page: $index_cost

""")


PROVENANCE = Template("""## Data

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


def dense_loss(config) -> str:
    """The embedder's inner loss as stages/train_embedder.py builds it."""
    if config.mini_batch_size is None:
        return "MultipleNegativesRankingLoss"
    return f"CachedMultipleNegativesRankingLoss (GradCache, mini-batches of {config.mini_batch_size})"


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


def front_matter(params, train, pipeline_tag: str, tags: list[str]) -> str:
    """The card's YAML header: the library, the task, the tags, and the base model (and whether the folder is an
    adapter on it); `train`: the training section of params.yaml that made the model."""
    header = {
        "library_name": "sentence-transformers",
        "pipeline_tag": pipeline_tag,
        "tags": list(tags),
        "language": ["en"],
        "license": "apache-2.0",
    }
    base_model = hub_model_id(params.models.embedder)
    if base_model:
        header["base_model"] = base_model
        if train.lora is not None and not train.lora.merge:
            header["base_model_relation"] = "adapter"
    if train.lora is not None:
        header["tags"] += ["peft", "lora"]
    return f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n"


def base_sentence(params) -> str:
    """The base model as params.yaml names it, with a link to its Hub page when it has one."""
    base_model = hub_model_id(params.models.embedder)
    return f"`{params.models.embedder}`" + (
        f" ([{base_model}](https://huggingface.co/{base_model}))" if base_model else ""
    )


def adapter_base_name(params) -> str:
    """The base model by its Hub id when it has one: what an adapter's card says loading it loads."""
    return f"`{hub_model_id(params.models.embedder) or params.models.embedder}`"


def pages_sentence(params) -> str:
    """What the model reads of a page."""
    if params.models.page_input == "image":
        return "The model reads page screenshots."
    if params.fetch.source == "documents":
        return "PDF pages were rasterised; text models read the page's text layer (OCR where a page has none)."
    return "Pages were typeset to PDF and rasterised; text models read the page's text layer."


def provenance_sections(
    training: dict,
    fetch_metrics: dict,
    generate_metrics: dict | None,
    commit: str,
    experiment: str,
    overrides: list[str],
    hashes: dict,
) -> str:
    """The part both cards share: the data, the training parameters (`training`: params.yaml's sections that made
    the model), and where the model came from, with the command that reproduces it."""
    reproduce = f"git checkout {commit.removesuffix('-dirty')} && " + (
        f"dvc exp run {' '.join(overrides)}" if overrides else "dvc repro"
    )
    return PROVENANCE.substitute(
        data=data_sentence(fetch_metrics, generate_metrics),
        training=yaml.safe_dump(training, sort_keys=False),
        commit=commit,
        experiment=experiment,
        hashes="".join(f"- {key}: `{value}`\n" for key, value in hashes.items()),
        reproduce=reproduce,
    )


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
    """The dense embedder's card; `picture`: the folder holds PICTURE (NDCG@10 by dimension) to show."""
    tags = ["sentence-transformers", "visual-document-retrieval", "matryoshka", "dvc"]
    training = {
        "models": params.models.model_dump(),
        "mine": params.mine.model_dump(),
        "train_embedder": params.train_embedder.model_dump(),
        "train_reranker": params.train_reranker.model_dump(),
    }
    return (
        front_matter(params, params.train_embedder, "sentence-similarity", tags)
        + DENSE_CARD.substitute(
            base=base_sentence(params),
            loss=dense_loss(params.train_embedder),
            adaptation=adaptation_sentence(params.train_embedder, adapter_base_name(params)),
            pages=pages_sentence(params),
            results=results_table(metrics),
            picture=f"![NDCG@10 by embedding dimension]({PICTURE})\n\n" if picture else "",
        )
        + provenance_sections(training, fetch_metrics, generate_metrics, commit, experiment, overrides, hashes)
    )


def multivector_card(
    params,
    metrics: dict,
    late_metrics: dict,
    fetch_metrics: dict,
    commit: str,
    experiment: str,
    overrides: list[str],
    hashes: dict,
    generate_metrics: dict | None = None,
) -> str:
    """The late-interaction model's card: `late_metrics` is metrics/multivector.json, `metrics` evaluate's (the
    dense rows, for comparison)."""
    config = params.late_interaction
    finetuned = late_metrics.get("multivector_finetuned")
    if config is None or finetuned is None:
        raise ValueError(
            "the multi-vector card needs late interaction on and the finetuned multi-vector row of "
            "metrics/multivector.json; run `dvc repro evaluate_multivector`"
        )
    if config.mini_batch_size is not None:
        loss_name = "CachedMultiVectorMultipleNegativesRankingLoss"
        loss = f"{loss_name} (GradCache, mini-batches of {config.mini_batch_size})"
    else:
        loss_name = loss = "MultiVectorMultipleNegativesRankingLoss"
    # the library's own tags for a multi-vector model, then this project's
    tags = ["sentence-transformers", "multi-vector", "colbert", "late-interaction"]
    tags += ["visual-document-retrieval", "dvc", f"loss:{loss_name}"]
    reading = [pages_sentence(params)] + [
        f"{what} are cut at {limit} tokens."
        for what, limit in (("Queries", config.query_length), ("Pages", config.document_length))
        if limit is not None
    ]
    # the dense rows at full size; their NDCG@10 per Matryoshka dimension is the dense card's
    dense_rows = {name: {k: v for k, v in row.items() if k != "dims"} for name, row in metrics.items()}
    held_out = late_metrics.get("held_out_set", {})
    held_out_size = f" ({held_out['queries']:,} queries x {held_out['pages']:,} pages)" if held_out else ""
    training = {
        "models": params.models.model_dump(),
        "mine": params.mine.model_dump(),
        "train_multivector": config.model_dump(),
    }
    return (
        front_matter(params, config, "feature-extraction", tags)
        + MULTIVECTOR_CARD.substitute(
            dims=config.projection_dim,
            model_id=params.publish.multivector_repo_id or "models/published_multivector",
            page_example="page_screenshot" if params.models.page_input == "image" else '"..."',
            base=base_sentence(params),
            seed=config.seed,
            loss=loss,
            projection_learning_rate=f"{config.projection_learning_rate or config.learning_rate:g}",
            learning_rate=f"{config.learning_rate:g}",
            adaptation=adaptation_sentence(config, adapter_base_name(params)),
            reading=" ".join(reading),
            held_out_size=held_out_size,
            results=results_table(dense_rows, late_metrics),
            index_dtype=config.index_dtype,
            index_cost=index_cost_sentence(finetuned, metrics),
        )
        + provenance_sections(training, fetch_metrics, generate_metrics, commit, experiment, overrides, hashes)
    )


def index_cost_sentence(late_row: dict, metrics: dict) -> str:
    """The finetuned multi-vector model's index per page beside the dense embedder's one float32 vector."""
    sentence = (
        f"{late_row['index_bytes_per_page']:,.0f} bytes per page on the held-out set "
        f"({late_row['tokens_per_page']:.0f} tokens x {late_row['token_dims']} dims), "
        f"{late_row['ms_per_query']:.1f} ms per query (encoding the query, then MaxSim over the pages' index)."
    )
    dense_dims = [int(dim) for dim in metrics.get("finetuned", {}).get("dims", {})]
    if dense_dims:
        dense_bytes = 4 * max(dense_dims)
        sentence += (
            f" The dense embedder's index holds one {max(dense_dims)}-d float32 vector per page, {dense_bytes:,} "
            f"bytes: the multi-vector index is {late_row['index_bytes_per_page'] / dense_bytes:.1f} times larger."
        )
    return sentence
