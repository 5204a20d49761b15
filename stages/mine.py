"""mine: hard negatives for every training pair, with the base embedder.

    python stages/mine.py             (run by `dvc repro mine`)

Uses sentence-transformers' `mine_hard_negatives` over the training pages: the positive itself is
never a candidate, candidates are taken from ranks range_min..range_max, and any candidate scoring
above (1 - relative_margin) x the positive's score is skipped as a likely duplicate or false negative.
Writes data/mined/train.parquet: query, positive, negative_1..negative_N (page texts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datasets import Dataset

from vdr.models import load_embedder
from vdr.params import load_params
from vdr.shards import atomic_path, read_table, require_columns, write_json


def main(params_path: str, pages: Path, output: Path, metrics_path: Path) -> None:
    # 1. Parameters and the base embedder
    params = load_params(params_path)
    mine = params.mine
    model = load_embedder(params.models.embedder, mine.max_seq_length)

    # 2. Training pairs: (query, text of its rendered page)
    train = read_table(pages / "train", columns=["id", "query", "text"])
    require_columns(train, ["query", "text"], pages / "train")
    pairs = Dataset.from_dict({"query": train["query"].to_pylist(), "positive": train["text"].to_pylist()})

    # 3. Mine over every training page
    mined = mine_hard_negatives_checked(pairs, model, mine)

    # 4. Write
    with atomic_path(output) as temporary:
        temporary.mkdir()
        mined.to_parquet(str(temporary / "train.parquet"))
    write_json(metrics_path, {"pairs": len(pairs), "pairs_with_negatives": len(mined), "negatives_per_pair": mine.num_negatives})


def mine_hard_negatives_checked(pairs: Dataset, model, mine) -> Dataset:
    from sentence_transformers.util import mine_hard_negatives

    mined = mine_hard_negatives(
        pairs,
        model,
        anchor_column_name="query",
        positive_column_name="positive",
        range_min=mine.range_min,
        range_max=mine.range_max,
        relative_margin=mine.relative_margin,
        num_negatives=mine.num_negatives,
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=mine.batch_size,
    )
    if len(mined) == 0:
        raise ValueError("mine: no training pair kept any negative; widen mine.range_max or lower mine.relative_margin")
    return mined


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--pages", type=Path, default=Path("data/pages"))
    parser.add_argument("--output", type=Path, default=Path("data/mined"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/mine.json"))
    args = parser.parse_args()
    main(args.params, args.pages, args.output, args.metrics)
