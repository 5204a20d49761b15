"""The reranker's labelled training pairs, from the mined rows (query, positive, negative_1..negative_N).

Used by stages/train_reranker.py and benchmarks/flops.py, which builds the same training set.
"""

from __future__ import annotations

from datasets import Dataset, Features, Image, Value

from vdr.io.tables import is_binary


def labelled_pairs(table, negatives_per_positive: int) -> Dataset:
    """(query, positive, 1) and (query, negative_j, 0) for j = 1..negatives_per_positive."""
    negative_columns = [f"negative_{j}" for j in range(1, negatives_per_positive + 1)]
    images = is_binary(table.schema.field("positive").type)
    as_page = (lambda value: {"bytes": value, "path": None}) if images else (lambda value: value)
    queries, pages, labels = [], [], []
    for row in table.to_pylist():
        queries.append(row["query"]), pages.append(as_page(row["positive"])), labels.append(1.0)
        for column in negative_columns:
            queries.append(row["query"]), pages.append(as_page(row[column])), labels.append(0.0)
    features = Features(
        {"query": Value("string"), "page": Image() if images else Value("string"), "label": Value("float32")}
    )
    return Dataset.from_dict({"query": queries, "page": pages, "label": labels}, features=features)
