"""The results table (shaped like the reference post's), the plot rows and reports/results.md;
vdr/publish/card.py builds the model card on them."""

from __future__ import annotations

ROW_LABELS = {
    "base": "base embedder",
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
    what late interaction costs when it ran, then NDCG@10 per Matryoshka dimension."""
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


def results_report(metrics: dict, evalset, evaluate, picture: str | None = None, late: dict | None = None) -> str:
    """reports/results.md: the held-out set, how it was scored, the results table (with the late-interaction rows
    of `late`, metrics/multivector.json, when it ran) and the picture beside it."""
    text = (
        "# Results\n\n"
        f"Held-out set: {evalset}. Metrics: pytrec_eval, cosine similarity, reranker over the finetuned embedder's "
        f"top {evaluate.top_k}, its score fused with the embedder's at weight {evaluate.fusion_weight} "
        "(`_only`: the reranker's order alone).\n\n" + results_table(metrics, late)
    )
    if picture:
        text += f"\n![NDCG@10 by embedding dimension]({picture})\n"
    return text
