"""gallery: what the base and the finetuned embedder retrieve for held-out queries, as one offline HTML page.

    python stages/gallery.py         (run by `dvc repro gallery`)

For a seeded sample of the held-out queries: the query, the page that answers it (qrels.tsv), and each embedder's top
3 pages from the evaluate stage's TREC runs (data/runs/base.trec, data/runs/finetuned.trec) as thumbnails, the
relevant ones marked; then the queries where finetuning hurt most (the relevant page ranked lower than the base
embedder ranked it), with both ranks. Sizes and the seed are constants of vdr/evaluation/gallery.py. The page images
are inlined (JPEG, base64), so reports/gallery.html opens in any browser offline, with no script; only the pages
shown are read from the corpus, one shard at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.evaluation.gallery import (
    SYSTEMS,
    gallery_html,
    hurt_most,
    load_held_out,
    load_ranking,
    page_images,
    pages_shown,
    query_results,
    sample_queries,
    thumbnail,
)
from vdr.io.beir import corpus_path
from vdr.io.files import atomic_path
from vdr.stage import parse_args, stage_process


@dataclass(frozen=True)
class Paths:
    dataset: Path = Path("data/pages/eval")
    runs: Path = Path("data/runs")  # stages/evaluate.py's TREC run files, one per system
    output: Path = Path("reports/gallery.html")


def main(paths: Paths) -> None:
    # 1. The held-out set's queries and judgements (not its images) and each embedder's ranking
    held_out = load_held_out(paths.dataset)
    runs = {system: paths.runs / f"{system}.trec" for system in SYSTEMS}
    results = query_results(held_out, {system: load_ranking(path, held_out) for system, path in runs.items()})

    # 2. The queries shown: a seeded sample, and those where finetuning hurt most
    sample = sample_queries(results)
    hurt = hurt_most(results)

    # 3. Thumbnails of the pages shown, and only those
    images = page_images(paths.dataset, pages_shown(sample + hurt))
    where = corpus_path(paths.dataset)
    thumbnails = {page: thumbnail(image, f"{where}, id '{page}'") for page, image in images.items()}

    # 4. The page, written atomically
    with atomic_path(paths.output) as temporary:
        temporary.write_text(gallery_html(held_out, runs, results, sample, hurt, thumbnails), encoding="utf-8")
    print(f"{paths.output}: {len(sample)} sampled queries, {len(hurt)} where finetuning hurt, {len(images)} pages")


if __name__ == "__main__":
    with stage_process("gallery"):
        main(parse_args(Paths, __doc__))
