"""The results table (shaped like the reference post's), the plot rows and reports/results.md;
vdr/card.py builds the model card on them."""

from __future__ import annotations

ROW_LABELS = {
    "base": "base embedder",
    "finetuned": "finetuned embedder",
    "finetuned+base_reranker": "finetuned embedder + base reranker",
    "finetuned+base_reranker_only": "finetuned embedder + base reranker (reranker order only)",
    "finetuned+reranker": "finetuned embedder + finetuned reranker",
    "finetuned+reranker_only": "finetuned embedder + finetuned reranker (reranker order only)",
}


def results_table(metrics: dict) -> str:
    """Markdown: one row per system at full size, then NDCG@10 per Matryoshka dimension."""
    systems = [s for s in ROW_LABELS if s in metrics]
    lines = [
        "| system | NDCG@10 | MRR@10 | Recall@10 | reranking ms/query |",
        "|---|---|---|---|---|",
    ]
    for system in systems:
        m = metrics[system]
        cost = f"{m['ms_per_query']:.0f} (top {m['top_k']})" if "ms_per_query" in m else ""
        lines.append(
            f"| {ROW_LABELS[system]} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@10']:.4f} | {cost} |"
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
    return "\n".join(lines) + "\n"


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


def results_report(metrics: dict, evalset, evaluate, picture: str | None = None) -> str:
    """reports/results.md: the held-out set, how it was scored, the results table and the picture beside it."""
    text = (
        "# Results\n\n"
        f"Held-out set: {evalset}. Metrics: pytrec_eval, cosine similarity, reranker over the finetuned embedder's "
        f"top {evaluate.top_k}, its score fused with the embedder's at weight {evaluate.fusion_weight} "
        "(`_only`: the reranker's order alone).\n\n" + results_table(metrics)
    )
    if picture:
        text += f"\n![NDCG@10 by embedding dimension]({picture})\n"
    return text
