"""The results gallery: what the base and the finetuned embedder retrieve for held-out queries, as one HTML page.

    held_out = load_held_out(dataset)                                   # queries and qrels, no images
    results = query_results(held_out, {s: load_ranking(runs / f"{s}.trec", held_out) for s in SYSTEMS})
    sample, hurt = sample_queries(results), hurt_most(results)
    images = page_images(dataset, pages_shown(sample + hurt))           # only the pages shown
    thumbnails = {page: thumbnail(image, page) for page, image in images.items()}
    text = gallery_html(held_out, run_paths, results, sample, hurt, thumbnails)   (stages/gallery.py)

For a seeded sample of the scored queries: the query, the page that answers it (qrels.tsv) and each embedder's top
pages, relevant ones marked; then the queries whose relevant page finetuning ranked lower, the largest loss of
reciprocal rank first. The page is static and offline: thumbnails inline as base64 JPEG, every text HTML-escaped,
no script, no address outside the file; its markup is well-formed XML too, so a test can parse it. Only the images
shown are read, one corpus shard at a time. The same inputs give the same bytes (no date in the page), so DVC sees
an unchanged output as unchanged.
"""

from __future__ import annotations

import base64
import html
import io
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from vdr.evaluation.metrics import top
from vdr.evaluation.significance import judged_queries, read_trec_run
from vdr.io.beir import corpus_path
from vdr.io.images import decode_page
from vdr.io.qrels import read_qrels
from vdr.io.tables import read_table

# the evaluate stage's run files compared, data/runs/<system>.trec, named as reports/results.md names them
SYSTEMS = {"base": "base embedder", "finetuned": "finetuned embedder"}
SAMPLE_SIZE = 12  # queries drawn at random (SEED) from the scored ones
HURT_SIZE = 6  # queries where finetuning hurt most
SEED = 0
TOP_K = 3  # pages shown per embedder and query
THUMBNAIL_WIDTH = 220  # pixels; a page is never enlarged
JPEG_QUALITY = 80


# --- the held-out set and the runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOut:
    """The scored queries of a held-out set (those with a relevant page), without its page images."""

    folder: Path
    queries: dict[str, str]  # {query id: text}, in queries.parquet order
    relevant: dict[str, list[str]]  # {query id: its relevant pages, the highest grade first}
    pages: int


@dataclass(frozen=True)
class QueryResult:
    """One query as the gallery shows it: its text, its relevant pages and each system's ranking."""

    query_id: str
    text: str
    relevant: list[str]
    rankings: dict[str, list[str]]  # {system: page ids, best first}

    def rank(self, system: str) -> int | None:
        """The rank (1 = first) of the best-ranked relevant page in `system`'s run; None when it ranks none."""
        ranks = [rank for rank, page in enumerate(self.rankings[system], start=1) if page in self.relevant]
        return min(ranks, default=None)


def load_held_out(dataset: Path) -> HeldOut:
    """The queries with a relevant page (qrels score > 0), their relevant pages and the number of pages of a
    BEIR-layout set, read without the page images (the evaluate stage checked the set before writing its runs)."""
    queries = read_table(dataset / "queries.parquet", columns=["id", "text"])
    qrels = read_qrels(dataset / "qrels.tsv")
    judged = judged_queries(qrels)
    texts = {str(q): text for q, text in zip(queries["id"].to_pylist(), queries["text"].to_pylist())}
    relevant = {
        query: sorted((page for page, grade in qrels[query].items() if grade > 0), key=lambda p: (-qrels[query][p], p))
        for query in texts
        if query in judged
    }
    pages = read_table(corpus_path(dataset), columns=["id"]).num_rows
    return HeldOut(dataset, {query: texts[query] for query in relevant}, relevant, pages)


def load_ranking(path: Path, held_out: HeldOut) -> dict[str, list[str]]:
    """{query id: page ids, best first} of a TREC run file, ranked as trec_eval ranks them (metrics.top)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the evaluate stage first (dvc repro evaluate)")
    run = read_trec_run(path)
    if not set(run) & set(held_out.queries):
        raise ValueError(
            f"{path} ranks none of the {len(held_out.queries)} scored queries of {held_out.folder}; the run was "
            "written for another held-out set: rerun the evaluate stage (dvc repro evaluate)"
        )
    depth = max(len(pages) for pages in run.values())
    return {query: list(pages) for query, pages in top(run, depth).items()}


def query_results(held_out: HeldOut, rankings: dict[str, dict[str, list[str]]]) -> list[QueryResult]:
    """Every scored query with each system's ranking (empty where a run leaves the query out)."""
    return [
        QueryResult(
            query, text, held_out.relevant[query], {s: ranking.get(query, []) for s, ranking in rankings.items()}
        )
        for query, text in held_out.queries.items()
    ]


# --- which queries are shown --------------------------------------------------------------------------------------


def sample_queries(results: list[QueryResult], size: int = SAMPLE_SIZE, seed: int = SEED) -> list[QueryResult]:
    """A seeded random sample of `size` queries (all of them when there are fewer), in the held-out set's order."""
    chosen = set(random.Random(seed).sample(range(len(results)), min(size, len(results))))
    return [result for index, result in enumerate(results) if index in chosen]


def reciprocal(rank: int | None) -> float:
    return 0.0 if rank is None else 1.0 / rank


def finetuning_loss(result: QueryResult) -> float:
    """How much finetuning lowered the relevant page: base minus finetuned reciprocal rank (> 0: it hurt)."""
    return reciprocal(result.rank("base")) - reciprocal(result.rank("finetuned"))


def hurt_most(results: list[QueryResult], count: int = HURT_SIZE) -> list[QueryResult]:
    """The queries whose relevant page finetuning ranked lower than the base embedder did, the largest loss of
    reciprocal rank first (a drop from rank 1 to 2 weighs more than one from 20 to 40)."""
    hurt = [result for result in results if finetuning_loss(result) > 0]
    return sorted(hurt, key=lambda result: (-finetuning_loss(result), result.query_id))[:count]


def pages_shown(results: list[QueryResult], top_k: int = TOP_K) -> set[str]:
    """The pages the gallery shows: each query's first relevant page and each system's top `top_k`."""
    pages = set()
    for result in results:
        pages.add(result.relevant[0])
        for ranking in result.rankings.values():
            pages.update(ranking[:top_k])
    return pages


# --- page images --------------------------------------------------------------------------------------------------


def page_images(dataset: Path, page_ids: set[str]) -> dict[str, bytes]:
    """The encoded images of `page_ids` only: the corpus is read one shard at a time and only their rows are kept."""
    corpus = corpus_path(dataset)
    wanted = pa.array(sorted(page_ids), pa.string())
    images: dict[str, bytes] = {}
    for shard in sorted(corpus.glob("*.parquet")) if corpus.is_dir() else [corpus]:
        if "image" not in pq.read_schema(shard).names:
            raise ValueError(
                f"{shard}: no 'image' column; the gallery shows page images, so the held-out set needs them "
                "(the render stage writes them): add the page images"
            )
        table = read_table(shard, columns=["id", "image"])
        ids = table["id"].cast(pa.string())
        shown = pc.is_in(ids, value_set=wanted)
        images.update(zip(ids.filter(shown).to_pylist(), table["image"].filter(shown).to_pylist()))
    missing = sorted(page_ids - images.keys())
    if missing:
        raise ValueError(
            f"{corpus}: page(s) {', '.join(repr(p) for p in missing[:5])} ranked in the runs are not in the corpus; "
            "the runs were written for another held-out set: rerun the evaluate stage (dvc repro evaluate)"
        )
    return images


def thumbnail(image: bytes, name: str) -> str:
    """A page image as an inline JPEG (a data URI), THUMBNAIL_WIDTH pixels wide, aspect kept; `name` names the page
    in the error about an image that cannot be decoded."""
    page = decode_page(image, name)
    if page.width > THUMBNAIL_WIDTH:
        height = max(1, round(page.height * THUMBNAIL_WIDTH / page.width))
        page = page.resize((THUMBNAIL_WIDTH, height), Image.LANCZOS)
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --- the page -----------------------------------------------------------------------------------------------------

STYLE = f"""
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 24px auto;
       max-width: 1160px; padding: 0 16px; line-height: 1.4; }}
header p, section > p {{ max-width: 900px; }}
code {{ background: #f3f4f6; padding: 0 4px; border-radius: 3px; }}
.query {{ border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 16px 16px; margin: 16px 0; }}
.query h3 {{ margin: 0 0 4px; font-size: 1.05em; overflow-wrap: anywhere; }}
.ranks {{ margin: 0 0 12px; color: #57606a; }}
.better {{ color: #1a7f37; font-weight: 600; }}
.worse {{ color: #cf222e; font-weight: 600; }}
.grid {{ display: grid; grid-template-columns: auto 1fr; gap: 12px 32px; align-items: start; }}
.answer {{ grid-row: span {len(SYSTEMS)}; }}
h4 {{ margin: 0 0 6px; font-size: 0.9em; color: #57606a; font-weight: 600; }}
.pages {{ display: flex; gap: 12px; flex-wrap: wrap; }}
figure {{ margin: 0; width: {THUMBNAIL_WIDTH + 8}px; }}
figure img {{ display: block; width: {THUMBNAIL_WIDTH}px; border: 4px solid #d0d7de; border-radius: 4px;
              background: #fff; }}
figcaption {{ font-size: 0.85em; margin-top: 4px; overflow-wrap: anywhere; }}
figure.hit img {{ border-color: #1a7f37; }}
figure.hit figcaption {{ color: #1a7f37; font-weight: 600; }}
figure.relevant img {{ border-color: #0969da; }}
.empty {{ color: #57606a; font-style: italic; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; border: 3px solid; vertical-align: -3px; }}
"""


def escape(text) -> str:
    return html.escape(str(text), quote=True)


def rank_text(rank: int | None) -> str:
    return "not ranked" if rank is None else f"rank {rank}"


def change_text(result: QueryResult) -> str:
    """'rank 4 with the base embedder → rank 1 finetuned (better)': the relevant page's rank with each embedder."""
    before, after = result.rank("base"), result.rank("finetuned")
    loss = finetuning_loss(result)
    verdict = "better" if loss < 0 else "worse" if loss > 0 else "same"
    return (
        f"relevant page: {rank_text(before)} with the base embedder → {rank_text(after)} finetuned "
        f'<span class="{verdict}">({verdict})</span>'
    )


def figure(page: str, thumbnails: dict[str, str], caption: str, css_class: str = "") -> str:
    attribute = f' class="{css_class}"' if css_class else ""
    return (
        f'<figure{attribute}><img src="{thumbnails[page]}" alt="page {escape(page)}" />'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def answer_block(result: QueryResult, thumbnails: dict[str, str]) -> str:
    """The page that answers the query (its highest-graded relevant page), and how many others there are."""
    page = result.relevant[0]
    others = len(result.relevant) - 1
    more = f" (+{others} more relevant)" if others else ""
    caption = f"<code>{escape(page)}</code>{more}"
    return f'<div class="answer"><h4>Page that answers it</h4>{figure(page, thumbnails, caption, "relevant")}</div>'


def system_block(result: QueryResult, system: str, thumbnails: dict[str, str], top_k: int) -> str:
    """A system's top pages for the query, each with its rank; a relevant page (a hit) has a green frame."""
    figures = []
    for rank, page in enumerate(result.rankings[system][:top_k], start=1):
        hit = page in result.relevant
        label = " ✓ relevant" if hit else ""
        figures.append(figure(page, thumbnails, f"#{rank} <code>{escape(page)}</code>{label}", "hit" if hit else ""))
    pages = "".join(figures) or '<p class="empty">the run ranks no page for this query</p>'
    title = f"{escape(SYSTEMS[system])}: top {top_k}"
    return f'<div class="system"><h4>{title}</h4><div class="pages">{pages}</div></div>'


def query_card(result: QueryResult, thumbnails: dict[str, str], top_k: int) -> str:
    systems = "".join(system_block(result, system, thumbnails, top_k) for system in result.rankings)
    return (
        f'<article class="query" data-query-id="{escape(result.query_id)}">'
        f"<h3>“{escape(result.text)}”</h3>"
        f'<p class="ranks">query <code>{escape(result.query_id)}</code>, {change_text(result)}</p>'
        f'<div class="grid">{answer_block(result, thumbnails)}{systems}</div></article>'
    )


def summary(results: list[QueryResult]) -> str:
    """How many queries finetuning ranked the relevant page higher, lower and the same for."""
    losses = [finetuning_loss(result) for result in results]
    better, worse = sum(loss < 0 for loss in losses), sum(loss > 0 for loss in losses)
    return (
        f"Over all {len(results)} scored queries, finetuning ranked the relevant page higher for {better}, lower for "
        f"{worse} and the same for {len(results) - better - worse}."
    )


def header(held_out: HeldOut, runs: dict[str, Path], results: list[QueryResult], top_k: int) -> str:
    run_files = " and ".join(f"<code>{escape(path)}</code> ({escape(SYSTEMS[s])})" for s, path in runs.items())
    return (
        "<header><h1>Retrieval gallery: base vs finetuned embedder</h1>"
        f"<p>Held-out set <code>{escape(held_out.folder)}</code>: {len(held_out.queries):,} scored queries (each "
        f"with a relevant page in <code>qrels.tsv</code>), {held_out.pages:,} pages. Runs: {run_files}, the TREC "
        f"run files of the evaluate stage. {summary(results)}</p>"
        f"<p>Each query shows the page that answers it, framed blue, and each embedder's top {top_k} pages with "
        "their rank (#1 is first); a retrieved page that is relevant (a hit) is framed "
        '<span class="swatch" style="border-color:#1a7f37"></span> green and marked ✓, the others '
        '<span class="swatch" style="border-color:#d0d7de"></span> grey.</p></header>'
    )


def gallery_html(
    held_out: HeldOut,
    runs: dict[str, Path],
    results: list[QueryResult],
    sample: list[QueryResult],
    hurt: list[QueryResult],
    thumbnails: dict[str, str],
    top_k: int = TOP_K,
) -> str:
    """The whole page: the header (the set, the runs, the overall count), the sample, the queries finetuning hurt."""
    sampled = "".join(query_card(result, thumbnails, top_k) for result in sample)
    worst = "".join(query_card(result, thumbnails, top_k) for result in hurt)
    if not hurt:
        worst = '<p class="empty">Finetuning ranked no relevant page lower than the base embedder did.</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8" />'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />'
        f"<title>Retrieval gallery: base vs finetuned embedder</title><style>{STYLE}</style></head><body>"
        f"{header(held_out, runs, results, top_k)}"
        f'<section id="sample"><h2>{len(sample)} held-out queries drawn at random (seed {SEED})</h2>{sampled}'
        "</section>"
        f'<section id="hurt"><h2>Where finetuning hurt most</h2><p>The queries whose relevant page the finetuned '
        "embedder ranked lower than the base embedder did, the largest drop in reciprocal rank first (at most "
        f"{HURT_SIZE}).</p>{worst}</section>"
        "</body></html>\n"
    )
