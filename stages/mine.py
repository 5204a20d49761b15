"""mine: hard negatives for every training pair, with the base embedder, or the dataset's own.

    python stages/mine.py             (run by `dvc repro mine`)
    python stages/mine.py --section mine_reranker --output data/mined_reranker --metrics metrics/mine_reranker.json
                                      (run by `dvc repro mine_reranker`: the reranker's negatives, mined with
                                      the finetuned embedder, or the base one, as mine_reranker.embedder says)

mine.source: mined searches the training pages with the base embedder: the positive itself is never a
candidate, candidates are taken from ranks range_min..range_max (the best-ranked, or a seeded random draw:
sampling_strategy), and any candidate scoring above
(1 - relative_margin) x the positive's score is skipped as a likely duplicate or false negative. Text
pages go through sentence-transformers' `mine_hard_negatives`; page images (models.page_input: image)
through the same rule on one encoding pass of the page screenshots.
Pages are read as models.page_input says (vdr/data/evalset.py): the text layer (OCR for image-only pages) or
the screenshot. mine.source: given keeps the negatives the dataset carries (negative_0.. in data/pages/train).
Encoding runs on encode.devices (vdr/retrieval/devices.py). Page screenshots are decoded a chunk at a time, and
their embeddings, when larger than search.max_memory_mb, are encoded into a temporary memory-mapped file
next to the output and searched block by block (vdr/retrieval/encode.py); sentence-transformers'
`mine_hard_negatives` holds the text pages' embeddings in memory.
Writes data/mined/train.parquet: query, positive, negative_1..negative_N (page texts, or PNG bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import set_seed

from vdr.config.evaluation import Encode, Search
from vdr.config.lengths import LENGTHS, with_measured_lengths
from vdr.config.mining import Mine, MineReranker
from vdr.config.models import Models
from vdr.config.section import load_sections
from vdr.data.reading import read_pages
from vdr.errors import fields_under
from vdr.io.files import atomic_path, write_json
from vdr.io.images import decode_image
from vdr.io.tables import read_table, require_columns
from vdr.models.loading import load_embedder
from vdr.retrieval.dense import DenseRetriever
from vdr.retrieval.devices import bf16_autocast, cpu_threads_per_worker, pool_devices
from vdr.retrieval.encode import Spill
from vdr.retrieval.mining import mine_negatives
from vdr.retrieval.pool import sigterm_raises
from vdr.stage import PageReading, parse_args, stage_process

SECTIONS = {"mine": Mine, "mine_reranker": MineReranker}  # --section: the params.yaml section it mines with


@dataclass(frozen=True)
class Paths(PageReading):
    params: Path = Path("params.yaml")
    section: str = field(
        default="mine", metadata={"choices": ["mine", "mine_reranker"], "help": "the params.yaml section to mine with"}
    )
    pages: Path = Path("data/pages")
    finetuned: Path = field(
        default=Path("models/embedder"),
        metadata={"help": "the finetuned embedder (mine_reranker.embedder: finetuned)"},
    )
    output: Path = Path("data/mined")
    metrics: Path = Path("metrics/mine.json")


def main(paths: Paths) -> None:
    # 1. Parameters (the `mine` or `mine_reranker` section) and the training pages, as the models read them
    params = load_sections(
        paths.params, models=Models, encode=Encode, search=Search, **{paths.section: SECTIONS[paths.section]}
    )
    params = with_measured_lengths(params, paths.pages / LENGTHS)  # max_seq_length auto: stages/generate.py
    section = paths.section
    mine = getattr(params, section)
    embedder = str(paths.finetuned) if getattr(mine, "embedder", "base") == "finetuned" else params.models.embedder
    train = read_table(paths.pages / "train")
    require_columns(train, ["id", "query"], paths.pages / "train")
    queries = train["query"].to_pylist()
    positives = read_pages(
        train, params.models.page_input, paths.pages / "train", paths.ocr_cache, paths.ocr_workers, decode=False
    )

    # 2. Negatives: the dataset's own, or mined with the embedder
    if mine.source == "given":
        given = sorted(
            (c for c in train.column_names if c.startswith("negative_")), key=lambda c: int(c.split("_")[1])
        )
        if len(given) < mine.num_negatives:
            raise ValueError(
                f"{section}.num_negatives: {mine.num_negatives} asked, {paths.pages / 'train'} carries "
                f"{len(given)} given negative column(s) {given}; "
                f"lower it, keep more with fetch.train_negative_columns, or set {section}.source: mined"
            )
        columns = {"query": queries, "positive": positives}
        columns.update({f"negative_{j + 1}": train[given[j]].to_pylist() for j in range(mine.num_negatives)})
        mined = Dataset.from_dict(columns)
    else:
        with fields_under("models"):
            model = load_embedder(embedder, params.models, max_seq_length=mine.max_seq_length)
        set_seed(mine.seed)  # sampling_strategy: random draws from torch's generator
        if params.models.page_input == "image":
            with Spill(params.search.max_memory_mb, paths.output.parent) as spill:
                mined = mine_image_negatives(
                    queries,
                    positives,
                    model,
                    mine,
                    params.encode.devices,
                    spill,
                    train["id"].to_pylist(),
                    bf16=params.encode.bf16,
                )
        else:
            pairs = Dataset.from_dict({"query": queries, "positive": positives})
            mined = mine_hard_negatives_checked(pairs, model, mine, params.encode.devices, params.encode.bf16)

    # 3. Write
    with atomic_path(paths.output) as temporary:
        temporary.mkdir()
        mined.to_parquet(str(temporary / "train.parquet"))
    write_json(
        paths.metrics,
        {
            "pairs": len(queries),
            "pairs_with_negatives": len(mined),
            "negatives_per_pair": mine.num_negatives,
            "source": mine.source,
            "embedder": getattr(mine, "embedder", "base"),
        },
    )


def mine_image_negatives(
    queries: list[str],
    pages: list[bytes],
    model,
    mine,
    devices="auto",
    spill: Spill | None = None,
    page_ids: list[str] | None = None,
    bf16: bool = False,
) -> Dataset:
    """Page screenshots: one encoding pass over the training pages, then the same rule as `mine_hard_negatives`.

    Rows that share a page id (several queries of one page) share one corpus entry, so a query's own page is never
    mined as its negative through another row."""
    page_ids = page_ids or [str(i) for i in range(len(pages))]
    corpus = {page_id: index for index, page_id in enumerate(dict.fromkeys(page_ids))}
    first_row = {page_id: row for row, page_id in reversed(list(enumerate(page_ids)))}
    unique_pages = [pages[first_row[page_id]] for page_id in corpus]
    retriever = DenseRetriever(model, mine.batch_size, devices=devices, bf16=bf16, spill=spill)
    with fields_under("encode"), retriever.encoding():  # a device that is not here: encode.devices
        query_embeddings = retriever.encode_queries(queries)
        page_embeddings = retriever.index(unique_pages, read=decode_image)
    chosen = mine_negatives(
        query_embeddings,
        page_embeddings,
        [corpus[page_id] for page_id in page_ids],
        mine.num_negatives,
        mine.range_min,
        mine.range_max,
        mine.relative_margin,
        mine.sampling_strategy,
        mine.seed,
        max_memory_mb=retriever.max_memory_mb,
    )
    kept = [i for i, negatives in enumerate(chosen) if negatives is not None]
    if not kept:
        raise ValueError(
            "mine: no training pair kept any negative; widen range_max or lower relative_margin in params.yaml"
        )
    columns = {"query": [queries[i] for i in kept], "positive": [pages[i] for i in kept]}
    columns.update(
        {f"negative_{j + 1}": [unique_pages[chosen[i][j]] for i in kept] for j in range(mine.num_negatives)}
    )
    return Dataset.from_dict(columns)


def mine_hard_negatives_checked(pairs: Dataset, model, mine, devices="auto", bf16: bool = False) -> Dataset:
    """sentence-transformers' mining on text pages; with two or more devices its own pool encodes them (under
    encode.bf16 autocast only in one process, as vdr/retrieval/devices.py encoding_pool)."""
    from sentence_transformers.util import mine_hard_negatives

    with fields_under("encode"):
        workers = pool_devices(model, devices)
    with (
        sigterm_raises(),
        cpu_threads_per_worker(workers),  # its pool is stopped by its own `finally`
        bf16_autocast(model, bf16 and not workers),
    ):
        mined = mine_hard_negatives(
            pairs,
            model,
            anchor_column_name="query",
            positive_column_name="positive",
            range_min=mine.range_min,
            range_max=mine.range_max,
            relative_margin=mine.relative_margin,
            num_negatives=mine.num_negatives,
            sampling_strategy=mine.sampling_strategy,
            output_format="n-tuple",
            batch_size=mine.batch_size,
            use_multi_process=workers or False,
        )
    if len(mined) == 0:
        raise ValueError(
            "mine: no training pair kept any negative; widen range_max or lower relative_margin in params.yaml"
        )
    return mined


if __name__ == "__main__":
    arguments = parse_args(Paths, __doc__)
    with stage_process(arguments.section):  # mine or mine_reranker
        main(arguments)
