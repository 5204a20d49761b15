"""The cards' YAML header: the Hub metadata sentence-transformers' own card generator writes (library, task, base
model, tags, datasets where they are public, the metric names and a `model-index` with the held-out results, which
the Hub shows on the model's page): one set of results per card, from the metrics files."""

from __future__ import annotations

import yaml

from vdr.publish.hub import hub_model_id

METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@1", "recall@10", "recall@100")  # of a metrics row, in this order


def held_out_dataset(params, fetch_metrics: dict) -> dict:
    """The held-out set as a model-index `dataset`: the Hub dataset it comes from when it has one."""
    source = params.fetch.source
    if source == "hub":
        return {
            "name": f"{params.fetch.dataset} ({params.fetch.eval_config}, held out)",
            "type": params.fetch.dataset,
            "config": params.fetch.eval_config,
            "split": params.fetch.split,
            "revision": fetch_metrics.get("commit", params.fetch.revision),
        }
    names = {
        "docstrings": ("API docstrings of held-out sub-packages", "vdr-docstrings-held-out"),
        "local": ("a local dataset, held out", "vdr-local-held-out"),
        "documents": ("held-out documents", "vdr-documents-held-out"),
    }
    name, kind = names.get(source, (f"{source}, held out", f"vdr-{source}-held-out"))
    return {"name": name, "type": kind}


def eval_result(task: tuple[str, str], dataset: dict, row: dict, prefix: str) -> dict:
    """One model-index result: `task` (type, name), the dataset, and the row's metrics named `prefix`_metric."""
    return {
        "task": {"type": task[0], "name": task[1]},
        "dataset": dataset,
        "metrics": [
            {"type": f"{prefix}_{metric}", "value": float(row[metric]), "name": metric_name(prefix, metric)}
            for metric in METRICS
            if metric in row
        ],
    }


def metric_name(prefix: str, metric: str) -> str:
    """`cosine_ndcg@10` -> `Cosine Ndcg@10`, as sentence-transformers' cards name their metrics."""
    return f"{prefix}_{metric}".replace("_", " ").title()


def front_matter(
    params,
    base: str,
    train,
    pipeline_tag: str,
    tags: list[str],
    model_name: str,
    results: list[dict],
) -> str:
    """The card's YAML header. `base`: the base model as params.yaml names it; `train`: the training section that
    made the model (a LoRA adapter: `base_model_relation: adapter`); `results`: model-index results (eval_result)."""
    header = {
        "library_name": "sentence-transformers",
        "pipeline_tag": pipeline_tag,
        "tags": list(tags) + (["peft", "lora"] if train.lora is not None else []),
        "language": ["en"],
        "license": "apache-2.0",
    }
    base_model = hub_model_id(base)
    if base_model:
        header["base_model"] = base_model
        if train.lora is not None and not train.lora.merge:
            header["base_model_relation"] = "adapter"
    if params.fetch.source == "hub":
        header["datasets"] = [params.fetch.dataset]
    if results:
        header["metrics"] = list(dict.fromkeys(metric["type"] for result in results for metric in result["metrics"]))
        header["model-index"] = [{"name": model_name, "results": results}]
    return f"---\n{yaml.safe_dump(header, sort_keys=False, allow_unicode=True)}---\n\n"


def dense_results(params, metrics: dict, fetch_metrics: dict) -> list[dict]:
    """The finetuned embedder's model-index results: one per Matryoshka dimension evaluated (else its full size)."""
    dataset = held_out_dataset(params, fetch_metrics)
    task = ("information-retrieval", "Information Retrieval")
    finetuned = metrics.get("finetuned", {})
    dims = sorted(((int(dim), row) for dim, row in finetuned.get("dims", {}).items()), key=lambda item: -item[0])
    if not dims:
        return [eval_result(task, dataset, finetuned, "cosine")] if finetuned else []
    return [
        eval_result(task, {**dataset, "name": f"{dataset['name']}, {dim} dimensions"}, row, "cosine")
        for dim, row in dims
    ]


def reranker_results(params, metrics: dict, fetch_metrics: dict) -> list[dict]:
    """The reranker's model-index results: the finetuned embedder's top candidates reranked, fused and alone."""
    dataset = held_out_dataset(params, fetch_metrics)
    return [
        eval_result(
            ("text-ranking", "Reranking"),
            {
                **dataset,
                "name": f"{dataset['name']}, the finetuned embedder's top {row.get('top_k', '?')} reranked"
                + (" (reranker order only)" if name.endswith("_only") else ""),
            },
            row,
            "rerank",
        )
        for name, row in metrics.items()
        if name in ("finetuned+reranker", "finetuned+reranker_only")
    ]


def multivector_results(params, row: dict, fetch_metrics: dict) -> list[dict]:
    """The finetuned multi-vector model's model-index result: `row`, its row of metrics/multivector.json."""
    task = ("information-retrieval", "Information Retrieval")
    return [eval_result(task, held_out_dataset(params, fetch_metrics), row, "maxsim")]
