"""The published models' cards: templates filled from params, metrics, the model's details and its provenance.

`model_card` (the dense embedder), `reranker_card` (the CrossEncoder) and `multivector_card` (the late-interaction
model, when it is on) each say what the model is (base model, loss, what it reads of a page), how to use it (a snippet
that runs as written against the published repo), its details (token limit, output size, similarity, architecture,
framework versions) and its results on the held-out set (vdr/evaluation/report.py's table; the dense card adds the
NDCG@10-by-dimension picture, the multi-vector card the index's cost). Then, in the same words for all three, the data
it was trained on, the training parameters and where it came from (vdr/publish/provenance.py), and what to cite
(vdr/publish/citations.py). The YAML header is vdr/publish/metadata.py's. No secret reaches a card, and no value that
names this machine's folders or servers (vdr/publish/private.py).
"""

from __future__ import annotations

import json
from string import Template

import yaml

from vdr.evaluation.report import results_table
from vdr.publish.citations import COLBERT, LORA, citations_section
from vdr.publish.details import KINDS, ModelDetails
from vdr.publish.hub import hub_model_id
from vdr.publish.metadata import dense_results, front_matter, multivector_results, reranker_results
from vdr.publish.private import placeholder_note, public_params, public_value
from vdr.publish.provenance import Provenance
from vdr.publish.usage import dense_usage, multivector_usage, reranker_usage

PICTURE = "ndcg_by_dim.svg"  # shipped next to the card in the published folder


DENSE_CARD = Template("""# Finetuned embedder for document-page retrieval

Finetuned from $base with MatryoshkaLoss over $loss on (query, page, hard negative) triplets. $adaptation$pages\
$reranker

## Usage

With sentence-transformers installed (`pip install -U sentence-transformers`), encode queries and pages, then score \
them by $similarity similarity:

```python
$usage```

$details
## Results on the held-out set

NDCG@10, MRR@10 and Recall@10 (pytrec_eval, cosine similarity); the reranker rescores the finetuned embedder's top \
candidates. Then NDCG@10 at each Matryoshka dimension.

$results
$picture""")


RERANKER_CARD = Template("""# Finetuned reranker for document-page retrieval

A cross-encoder (reranker): it reads a query and a page together and gives one relevance score. Finetuned from \
$base$layers with BinaryCrossEntropyLoss (pos_weight $pos_weight) on (query, page, label) pairs: each training \
query's page (label 1) and $negatives (label 0) that the $miner ranks high, the pages it meets when it \
reranks that embedder's results. $adaptation$pages$reading

## Usage

With sentence-transformers installed (`pip install -U sentence-transformers`), score (query, page) pairs, or rank \
pages for a query:

```python
$usage```

In retrieval it rescores the first candidates of an embedder$embedder: on the held-out set below, the finetuned \
embedder's top $top_k pages, its score fused with the embedder's (each standardised over the query's candidates) at \
weight $fusion_weight, and alone.

$details
## Results on the held-out set

NDCG@10, MRR@10 and Recall@10 (pytrec_eval) on the held-out set$held_out_size: the embedders alone first, then the \
finetuned embedder's top candidates reranked; reranking ms/query is what the reranker adds per query.

$results
""")


MULTIVECTOR_CARD = Template("""# Finetuned multi-vector (late-interaction) model for document-page retrieval

A multi-vector model, ColBERT-style: it encodes a query or a page as one $dims-d vector per token, not one vector \
per page, and scores a query against a page by MaxSim (for each query token, its best inner product with any page \
token, summed over the query's tokens).

## Usage

With sentence-transformers installed (`pip install -U sentence-transformers`), it loads with `MultiVectorEncoder`:

```python
$usage```

Finetuned from $base: its token vectors go through a fresh linear projection (no bias, drawn from seed $seed) to \
$dims dimensions, trained with $loss on (query, page, hard negative) triplets, the projection at learning rate \
$projection_learning_rate and the rest at $learning_rate. $adaptation$reading

$details
## Results on the held-out set

NDCG@10, MRR@10 and Recall@10 (pytrec_eval) on the held-out set$held_out_size. The dense rows of the same run come \
first for comparison (one vector per page, cosine similarity). The multi-vector rows rank every page by MaxSim; the \
base multi-vector row is the base model with the same fresh projection, untrained. A reranker row rescores the top \
candidates of the model it names.

$results
## Index cost

Every page is indexed as its token vectors in $index_dtype, plus 8 bytes of offsets per page: $index_cost

""")


DETAILS = Template("""## Model details

- Model type: $kind
- Base model: $base
- Maximum sequence length: $max_length
- Output: $output
- $scoring
- Input: $modalities
- Language: en
- License: apache-2.0

### Architecture

```
$architecture
```

### Framework versions

$versions
""")


PROVENANCE = Template("""## Data

$data

## Training parameters

```yaml
$training```

## Provenance

- git commit: `$commit`$uncommitted
- DVC experiment: `$experiment`
$hashes
Reproduce:

```bash
$reproduce
```
$note
""")


def dense_loss(config) -> str:
    """The class of the embedder's inner loss, as stages/train_embedder.py chooses it."""
    return "MultipleNegativesRankingLoss" if config.mini_batch_size is None else "CachedMultipleNegativesRankingLoss"


def dense_loss_sentence(config) -> str:
    """The inner loss as the card's first paragraph names it."""
    if config.mini_batch_size is None:
        return dense_loss(config)
    return f"{dense_loss(config)} (GradCache, mini-batches of {config.mini_batch_size})"


def documents_sentence(fetch_metrics: dict, generate_metrics: dict) -> str:
    """Your own documents: how many, their hash, the split, who wrote the queries and what the filters kept."""
    queries = generate_metrics.get("queries", {})
    model = public_value("generate.model", generate_metrics.get("model", "?"))
    backend = generate_metrics.get("backend", "?")
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


def base_sentence(name: str, key: str = "models.embedder") -> str:
    """The base model as params.yaml names it (`key`), with a link to its Hub page when it has one."""
    base_model = hub_model_id(name)
    return f"`{public_value(key, name)}`" + (
        f" ([{base_model}](https://huggingface.co/{base_model}))" if base_model else ""
    )


def adapter_base_name(name: str, key: str = "models.embedder") -> str:
    """The base model by its Hub id when it has one: what an adapter's card says loading it loads."""
    return f"`{hub_model_id(name) or public_value(key, name)}`"


def pages_sentence(params) -> str:
    """What the model reads of a page."""
    if params.models.page_input == "image":
        return "The model reads page screenshots."
    if params.fetch.source == "documents":
        return "PDF pages were rasterised; text models read the page's text layer (OCR where a page has none)."
    return "Pages were typeset to PDF and rasterised; text models read the page's text layer."


def repo_link(repo_id: str | None) -> str:
    return f"[{repo_id}](https://huggingface.co/{repo_id})" if repo_id else ""


def details_section(details: ModelDetails | None, base: str, output: str) -> str:
    """The model's details, as it loads from its published folder; empty without them."""
    if details is None:
        return ""
    if details.lengths:
        named = {"query_length": "queries", "document_length": "pages"}
        max_length = ", ".join(f"{named[name]}: {length} tokens" for name, length in details.lengths.items())
    elif details.max_seq_length is not None:
        max_length = f"{details.max_seq_length} tokens"
    else:
        max_length = "the model's own"
    if details.kind == "CrossEncoder":
        scoring = f"Scoring: one logit per (query, page) pair, through {details.similarity or 'no activation'}"
        modalities = f"(query, page) pairs; {', '.join(details.modalities)}"
    else:
        scoring = f"Similarity function: {details.similarity}"
        modalities = ", ".join(details.modalities)
    return DETAILS.substitute(
        kind=KINDS.get(details.kind, details.kind),
        base=base,
        max_length=max_length,
        output=output,
        scoring=scoring,
        modalities=modalities,
        architecture=details.architecture,
        versions="\n".join(f"- {name}: {version}" for name, version in details.versions.items()),
    )


def provenance_sections(training: dict, provenance: Provenance) -> str:
    """The part every card shares: the data, the training parameters (`training`: params.yaml's sections that made
    the model), and where the model came from, with the command that reproduces it. Values that name this machine's
    folders or servers show as placeholders, with a note."""
    shown, replaced = public_params(training)
    overrides, replaced_overrides = public_params(provenance.overrides)
    arguments = " ".join(
        f"-S '{key}={value}'" if key in replaced_overrides else f"-S '{key}={json.dumps(value)}'"
        for key, value in overrides.items()
    )
    reproduce = f"git checkout {provenance.commit} && " + (f"dvc exp run {arguments}" if arguments else "dvc repro")
    uncommitted = ""
    if provenance.uncommitted:  # pushed only with publish.allow_dirty: true
        count = len(provenance.uncommitted)
        uncommitted = (
            f" (the working tree's code differed from this commit in {count} tracked file{'s' if count > 1 else ''} "
            "when this model was published, `publish.allow_dirty`: the commit alone does not reproduce it)"
        )
    return PROVENANCE.substitute(
        data=data_sentence(provenance.fetch_metrics, provenance.generate_metrics),
        training=yaml.safe_dump(shown, sort_keys=False),
        commit=provenance.commit,
        uncommitted=uncommitted,
        experiment=provenance.experiment,
        hashes="".join(f"- {key}: `{value}`\n" for key, value in provenance.hashes.items()),
        reproduce=reproduce,
        note=placeholder_note(replaced + replaced_overrides),
    )


def without_dims(metrics: dict) -> dict:
    """The metrics' rows at full size only; their NDCG@10 per Matryoshka dimension is the dense card's."""
    return {
        name: {k: v for k, v in row.items() if k != "dims"} if isinstance(row, dict) else row
        for name, row in metrics.items()
    }


def lora_methods(train) -> dict:
    return {"LoRA": LORA} if train.lora is not None else {}


def dense_output(params, metrics: dict, dims: int) -> str:
    """The embedding size: the published default, the full size when they differ, and the Matryoshka sizes."""
    full = max([int(dim) for dim in metrics.get("finetuned", {}).get("dims", {})] or [dims])
    text = f"{dims} dimensions" + (
        f" by default (`truncate_dim` in its config; its full size is {full})" if dims != full else ""
    )
    trained = params.train_embedder.matryoshka_dims
    return (
        text + f"; Matryoshka: trained at {', '.join(str(dim) for dim in trained)} (any of them with `truncate_dim`)"
    )


def model_card(
    params,
    metrics: dict,
    provenance: Provenance,
    details: ModelDetails | None = None,
    picture: bool = False,
) -> str:
    """The dense embedder's card; `details`: the published model's (None: no details section); `picture`: the folder
    holds PICTURE (NDCG@10 by dimension) to show."""
    config = params.train_embedder
    inner = dense_loss(config)
    tags = ["sentence-transformers", "sentence-similarity", "feature-extraction", "dense", "generated_from_trainer"]
    tags += ["loss:MatryoshkaLoss", f"loss:{inner}", "visual-document-retrieval", "matryoshka", "dvc"]
    training = {
        "models": params.models.model_dump(),
        "mine": params.mine.model_dump(),
        "train_embedder": config.model_dump(),
    }
    publish = params.publish
    dims, similarity = publish.truncate_dim or max(config.matryoshka_dims), "cosine"
    if details is not None:  # as the published model loads
        dims, similarity = details.output_dims or dims, details.similarity or similarity
    reranker = ""
    if publish.push and publish.reranker_repo_id:
        reranker = f" The finetuned reranker of the table is published as {repo_link(publish.reranker_repo_id)}."
    base = base_sentence(params.models.embedder)
    header = front_matter(
        params,
        params.models.embedder,
        config,
        "sentence-similarity",
        tags,
        publish.repo_id or "Finetuned embedder for document-page retrieval",
        dense_results(params, metrics, provenance.fetch_metrics),
    )
    return (
        header
        + DENSE_CARD.substitute(
            base=base,
            loss=dense_loss_sentence(config),
            adaptation=adaptation_sentence(config, adapter_base_name(params.models.embedder)),
            pages=pages_sentence(params),
            reranker=reranker,
            similarity=similarity,
            usage=dense_usage(params, dims, similarity),
            details=details_section(details, base, dense_output(params, metrics, dims)),
            results=results_table(metrics),
            picture=f"![NDCG@10 by embedding dimension]({PICTURE})\n\n" if picture else "",
        )
        + provenance_sections(training, provenance)
        + citations_section(["MatryoshkaLoss", inner], lora_methods(config))
    )


def reranker_card(
    params,
    metrics: dict,
    provenance: Provenance,
    details: ModelDetails | None = None,
) -> str:
    """The reranker's card: `metrics` is metrics/evaluate.json (the reranker's rows beside the embedders')."""
    config = params.train_reranker
    publish = params.publish
    tags = ["sentence-transformers", "cross-encoder", "reranker", "generated_from_trainer"]
    tags += ["loss:BinaryCrossEntropyLoss", "visual-document-retrieval", "dvc"]
    training = {
        "models": params.models.model_dump(),
        "mine_reranker": params.mine_reranker.model_dump(),
        "train_reranker": config.model_dump(),
    }
    held_out = metrics.get("held_out_set", {})
    fused = metrics.get("finetuned+reranker", {})
    base = base_sentence(params.models.reranker, "models.reranker")
    embedder = ""
    if publish.push and publish.repo_id:
        embedder = f" (such as the finetuned embedder {repo_link(publish.repo_id)})"
    output = "one relevance score per (query, page) pair"
    header = front_matter(
        params,
        params.models.reranker,
        config,
        "text-ranking",
        tags,
        publish.reranker_repo_id or "Finetuned reranker for document-page retrieval",
        reranker_results(params, metrics, provenance.fetch_metrics),
    )
    return (
        header
        + RERANKER_CARD.substitute(
            base=base,
            layers=f" (its first {config.num_layers} layers)" if config.num_layers else "",
            pos_weight=f"{config.pos_weight:g}",
            negatives=f"{config.negatives_per_positive} hard negative" + "s" * (config.negatives_per_positive != 1),
            miner=f"{params.mine_reranker.embedder} embedder",
            adaptation=adaptation_sentence(config, adapter_base_name(params.models.reranker, "models.reranker")),
            pages=pages_sentence(params),
            reading=f" A (query, page) pair is cut at {config.max_length} tokens." if config.max_length else "",
            usage=reranker_usage(params),
            embedder=embedder,
            top_k=fused.get("top_k", "?"),
            fusion_weight=fused.get("fusion_weight", "?"),
            details=details_section(details, base, output),
            held_out_size=f" ({held_out['queries']:,} queries x {held_out['pages']:,} pages)" if held_out else "",
            results=results_table(without_dims(metrics)),
        )
        + provenance_sections(training, provenance)
        + citations_section(["BinaryCrossEntropyLoss"], lora_methods(config))
    )


def multivector_card(
    params,
    metrics: dict,
    late_metrics: dict,
    provenance: Provenance,
    details: ModelDetails | None = None,
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
    held_out = late_metrics.get("held_out_set", {})
    training = {
        "models": params.models.model_dump(),
        "mine": params.mine.model_dump(),
        "train_multivector": config.model_dump(),
    }
    base = base_sentence(params.models.embedder)
    header = front_matter(
        params,
        params.models.embedder,
        config,
        "feature-extraction",
        tags,
        params.publish.multivector_repo_id or "Finetuned multi-vector model for document-page retrieval",
        multivector_results(params, finetuned, provenance.fetch_metrics),
    )
    return (
        header
        + MULTIVECTOR_CARD.substitute(
            dims=config.projection_dim,
            usage=multivector_usage(params),
            base=base,
            seed=config.seed,
            loss=loss,
            projection_learning_rate=f"{config.projection_learning_rate or config.learning_rate:g}",
            learning_rate=f"{config.learning_rate:g}",
            adaptation=adaptation_sentence(config, adapter_base_name(params.models.embedder)),
            reading=" ".join(reading),
            details=details_section(details, base, f"{config.projection_dim} dimensions per token"),
            held_out_size=f" ({held_out['queries']:,} queries x {held_out['pages']:,} pages)" if held_out else "",
            results=results_table(without_dims(metrics), late_metrics),
            index_dtype=config.index_dtype,
            index_cost=index_cost_sentence(finetuned, metrics),
        )
        + provenance_sections(training, provenance)
        + citations_section([loss_name], {"ColBERT (late interaction, MaxSim)": COLBERT, **lora_methods(config)})
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
