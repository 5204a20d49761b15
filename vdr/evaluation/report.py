"""The results table (shaped like the reference post's), the plot rows and reports/results.md;
vdr/publish/card.py builds the model card on them."""

from __future__ import annotations

ROW_LABELS = {
    "base": "base embedder",
    "base_as_is": "base embedder as it is (its own token limit)",
    "finetuned": "finetuned embedder",
    "finetuned+base_reranker": "finetuned embedder + base reranker",
    "finetuned+base_reranker_only": "finetuned embedder + base reranker (reranker order only)",
    "finetuned+reranker": "finetuned embedder + finetuned reranker",
    "finetuned+reranker_only": "finetuned embedder + finetuned reranker (reranker order only)",
}


LATE_ROW_LABELS = {  # metrics/multivector.json (stages/evaluate_multivector.py), when late interaction is on
    "multivector_base": "base multi-vector (late interaction)",
    "multivector_finetuned": "finetuned multi-vector (late interaction)",
    "multivector_finetuned+reranker": "finetuned multi-vector + finetuned reranker",
    "multivector_finetuned+reranker_only": "finetuned multi-vector + finetuned reranker (reranker order only)",
}


def results_table(metrics: dict, late: dict | None = None) -> str:
    """Markdown: one row per system at full size (the late-interaction rows of `late` after the dense ones), then
    what late interaction costs when it ran, then NDCG@10 per Matryoshka dimension, the paired comparisons, which
    system was chosen and in which arithmetic."""
    late = {name: row for name, row in (late or {}).items() if name in LATE_ROW_LABELS}
    lines = [
        "| system | NDCG@10 | MRR@10 | Recall@10 | reranking ms/query |",
        "|---|---|---|---|---|",
    ]
    for label, m in [(ROW_LABELS[s], metrics[s]) for s in ROW_LABELS if s in metrics] + [
        (LATE_ROW_LABELS[s], late[s]) for s in LATE_ROW_LABELS if s in late
    ]:
        cost = f"{m['ms_per_query']:.0f} (top {m['top_k']})" if "top_k" in m else ""
        lines.append(f"| {label} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@10']:.4f} | {cost} |")
    if "token_limit" in metrics:
        lines += ["", length_sentence(metrics["token_limit"])]
    if "base_as_is" in metrics and "finetuned" in metrics:
        lines += ["", as_is_sentence(metrics["base_as_is"], metrics["finetuned"])]
    if late:
        lines += ["", "| late interaction | index bytes/page | tokens/page x dims | ms/query (encode + MaxSim) |"]
        lines.append("|---|---|---|---|")
        for name in (s for s in LATE_ROW_LABELS if "index_bytes_per_page" in late.get(s, {})):
            m = late[name]
            lines.append(
                f"| {LATE_ROW_LABELS[name]} | {m['index_bytes_per_page']:.0f} | "
                f"{m['tokens_per_page']:.0f} x {m['token_dims']} | {m['ms_per_query']:.1f} |"
            )
    dims = sorted(
        {int(d) for s in ("base", "finetuned") if s in metrics for d in metrics[s].get("dims", {})}, reverse=True
    )
    if dims:
        lines += ["", "| dims | base | finetuned |", "|---|---|---|"]
        for dim in dims:
            cells = [
                f"{metrics[s]['dims'][str(dim)]['ndcg@10']:.4f}" if s in metrics else "" for s in ("base", "finetuned")
            ]
            lines.append(f"| {dim} | {cells[0]} | {cells[1]} |")
    if metrics.get("comparisons"):
        lines += ["", comparisons_table(metrics["comparisons"], metrics.get("held_out_set", {}).get("queries"))]
    if "system" in metrics:
        lines += ["", system_sentence(metrics["system"])]
    if "precision" in metrics:
        lines += ["", arithmetic_sentence(metrics["precision"])]
    return "\n".join(lines) + "\n"


def comparisons_table(comparisons: dict, queries: int | None) -> str:
    """Markdown: each system against its reference (vdr/evaluation/significance.py paired_comparisons)."""
    lines = [
        "| comparison | NDCG@10 difference | standard error | 95% interval | beyond noise |",
        "|---|---|---|---|---|",
    ]
    for name, c in comparisons.items():
        low, high = c["interval_95_low"], c["interval_95_high"]
        lines.append(
            f"| {name} | {c['difference']:+.4f} | {c['standard_error']:.4f} | [{low:+.4f}, {high:+.4f}] "
            f"| {'yes' if c['beyond_noise'] else 'no'} |"
        )
    over = f" over the {queries} held-out queries" if queries else ""
    return "\n".join(lines) + (
        f'\n\nPaired per-query differences{over} (bootstrap interval, seeded); "no": within the held-out set\'s noise.'
    )


def length_sentence(limit: dict) -> str:
    """How much of each page and query the embedders read (metrics' `token_limit`, vdr/models/lengths.py)."""
    if limit["max_seq_length"] is None:
        return "The embedders read pages and queries up to their own token limit."
    sentence = f"The embedders read the first {limit['max_seq_length']} tokens of each page and query"
    if not limit["auto"]:
        return sentence + " (evaluate.max_seq_length)."
    own = limit["model_max_seq_length"]
    within = f", at most the model's own {own}" if own else ""
    return sentence + (
        f", a limit chosen from the training pages (max_seq_length auto: the shortest multiple of 32 that holds "
        f"generate.length_coverage of them whole{within}; {limit['pages_longer']:.0%} of them are longer)."
    )


def arithmetic_sentence(precision: dict) -> str:
    """Which arithmetic produced the numbers (metrics' `precision`, vdr/config/precision.py): the same run gives
    other numbers, to about the third decimal, in the other arithmetic."""
    if not precision["encode_bf16"]:
        return "Encoding and reranking in float32."
    native = "native on this machine" if precision["native_bf16"] else "emulated on this machine, several times slower"
    return f"Encoding and reranking under bf16 autocast ({native})."


def ndcg_by_dimension(metrics: dict) -> list[dict]:
    """Rows for `dvc plots`: NDCG@10 per embedding dimension, base vs finetuned."""
    dims = sorted(
        {int(d) for d in metrics["base"]["dims"]} & {int(d) for d in metrics["finetuned"]["dims"]}, reverse=True
    )
    return [
        {
            "dim": d,
            "base": metrics["base"]["dims"][str(d)]["ndcg@10"],
            "finetuned": metrics["finetuned"]["dims"][str(d)]["ndcg@10"],
        }
        for d in dims
    ]


def headline(results: dict) -> dict:
    """What metrics/evaluate.json keeps for `dvc metrics show` and `dvc exp show`: each row at full size, the
    comparisons between systems, the chosen system and the held-out set, without the per-dimension rows and
    comparisons and the validation scores by weight (those stay in reports/results.json)."""
    kept = {}
    for name, value in results.items():
        if name == "comparisons":
            value = {pair: c for pair, c in value.items() if "@" not in pair}  # "finetuned@64 vs finetuned@384"
        elif name == "system":
            value = {key: v for key, v in value.items() if not key.startswith("validation_ndcg")}
        elif isinstance(value, dict):
            value = {key: v for key, v in value.items() if key != "dims"}
        kept[name] = value
    return kept


def as_is_sentence(as_is: dict, finetuned: dict) -> str:
    """What the base-as-it-is row is, and a flag when the finetuned embedder scores below it: then a user is better
    served by the untouched model at its own token limit than by the finetuned one at the evaluated limit."""
    sentence = (
        f"The base embedder as it is reads {as_is['max_seq_length']} tokens of each page and query, as a user "
        "running the untouched model would; the other rows read the limit above."
    )
    if finetuned["ndcg@10"] < as_is["ndcg@10"]:
        sentence += (
            f" **Flag: the finetuned embedder ({finetuned['ndcg@10']:.4f}) scores below the base embedder as it is "
            f"({as_is['ndcg@10']:.4f})**: train and evaluate at a longer max_seq_length, or use the base model."
        )
    return sentence


def system_sentence(system: dict) -> str:
    """Which system the numbers recommend and why (metrics' `system`): chosen on the validation split
    (vdr/evaluation/fusion.py) or the preset evaluate.fusion_weight."""
    if system.get("chosen_on") != "validation":
        return f"The reranker is fused at the preset weight {system['fusion_weight']} (evaluate.fusion_weight)."
    gain = system["validation_gain"]
    where = (
        f"on the validation split ({system['validation_queries']:,} queries, {system['validation_pages']:,} pages "
        "held out of training, disjoint from the held-out set)"
    )
    measured = (
        f"the reranker fused at its best weight, {system['reranker_weight']}, changed NDCG@10 by "
        f"{gain['difference']:+.4f} (standard error {gain['standard_error']:.4f}) against the embedder alone"
    )
    if system["fusion_weight"] == 0:
        return (
            f"System chosen {where}: the finetuned embedder alone. There {measured}, not a gain beyond the noise, "
            "so the reranker is not used; its rows in the table show it fused at that weight."
        )
    return (
        f"System chosen {where}: the finetuned embedder with the reranker fused at weight {system['fusion_weight']}. "
        f"There {measured}, beyond the noise."
    )


def results_report(metrics: dict, evalset, evaluate, picture: str | None = None, late: dict | None = None) -> str:
    """reports/results.md: the held-out set, how it was scored, the results table (with the late-interaction rows of
    `late`, metrics/multivector.json, when it ran, and which system was chosen) and the picture beside it."""
    fused = metrics.get("finetuned+reranker", {}).get("fusion_weight", evaluate.fusion_weight)
    how = "at the weight the validation split chose" if evaluate.fusion_weight == "auto" else "at the preset weight"
    text = (
        "# Results\n\n"
        f"Held-out set: {evalset}. Metrics: pytrec_eval, cosine similarity, reranker over the finetuned embedder's "
        f"top {evaluate.top_k}, its score fused with the embedder's {how}, {fused} "
        "(`_only`: the reranker's order alone).\n\n" + results_table(metrics, late)
    )
    if picture:
        text += f"\n![NDCG@10 by embedding dimension]({picture})\n"
    return text
