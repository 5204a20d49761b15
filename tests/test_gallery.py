"""The results gallery (vdr/evaluation/gallery.py, stages/gallery.py) on a tiny held-out set with hand-made runs: the
sample, the hits marked, the queries finetuning hurt, text escaped, nothing fetched from outside the file; and the
page as a real browser draws it (Debian's chromium, headless: `apt-get install chromium`; CI installs it (.ci/run),
so there a missing browser fails that test instead of skipping it)."""

import base64
import io
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from stages.gallery import Paths, main
from tests.support.evalsets import beir_set
from tests.support.images import page_png
from vdr.evaluation.gallery import (
    HURT_SIZE,
    SAMPLE_SIZE,
    THUMBNAIL_WIDTH,
    load_held_out,
    load_ranking,
    page_images,
    query_results,
    sample_queries,
)
from vdr.evaluation.metrics import write_trec_run
from vdr.io.tables import read_table, write_shards

QUERIES = 14  # more than SAMPLE_SIZE, so the sample is a draw
SCRIPT_QUERY = 'which <script>alert("x")</script> & co page?'
# the relevant page's rank with each embedder (None: not ranked), for the queries where it matters
RANKS = {
    "q1": (3, 1),  # better
    "q2": (1, 4),  # worse: reciprocal rank 1 -> 0.25, the most hurt
    "q3": (2, None),  # worse: 0.5 -> 0
    "q4": (5, 6),  # worse, a little
    "q5": (None, 2),  # better
}  # every other query: rank 1 with both


def ranking(relevant: str, rank: int | None, pages: list[str]) -> dict[str, float]:
    """Scores that put `relevant` at `rank` (left out when None) among the other pages."""
    others = [page for page in pages if page != relevant]
    order = others if rank is None else others[: rank - 1] + [relevant] + others[rank - 1 :]
    return {page: 1.0 - position / 100 for position, page in enumerate(order[:10])}


@pytest.fixture
def held_out(tmp_path) -> tuple[Path, Path]:
    """A held-out set of 16 page images, in corpus/ shards of 5 pages as the render stage writes them, 14 queries
    answered by page p<i> (plus one judged irrelevant only and one not judged: neither is scored), and the
    evaluate stage's two runs."""
    pages = [f"p{i}" for i in range(QUERIES + 2)]
    queries = [f"q{i}" for i in range(QUERIES + 2)]
    texts = [SCRIPT_QUERY if q == "q5" else f"question {i} about report {i}" for i, q in enumerate(queries)]
    qrels = {q: {f"p{i}": 1} for i, q in enumerate(queries[:QUERIES])} | {queries[QUERIES]: {"p0": 0}}
    corpus = {"id": pages, "image": [page_png(i, 320, 420) for i in range(len(pages))]}
    dataset = beir_set(tmp_path / "eval", corpus, {"id": queries, "text": texts}, qrels)
    table = read_table(dataset / "corpus.parquet")
    (dataset / "corpus.parquet").unlink()
    write_shards(dataset / "corpus", table.to_pylist(), table.schema, shard_size=5)
    runs = tmp_path / "runs"
    runs.mkdir()
    for column, system in enumerate(("base", "finetuned")):
        run = {q: ranking(f"p{i}", RANKS.get(q, (1, 1))[column], pages) for i, q in enumerate(queries[:QUERIES])}
        write_trec_run(runs / f"{system}.trec", run, system)
    return dataset, runs


@pytest.fixture
def gallery(held_out, tmp_path) -> Path:
    dataset, runs = held_out
    main(Paths(dataset=dataset, runs=runs, output=tmp_path / "reports" / "gallery.html"))
    return tmp_path / "reports" / "gallery.html"


def articles(root: ET.Element, section: str) -> list[ET.Element]:
    return root.findall(f".//section[@id='{section}']/article")


def figures(article: ET.Element, title: str) -> list[ET.Element]:
    """The figures of the block of `article` whose heading starts with `title`."""
    block = next(div for div in article.iter("div") if div.findtext("h4", "").startswith(title))
    return block.findall(".//figure")


def caption(figure: ET.Element) -> str:
    return "".join(figure.find("figcaption").itertext())


def test_the_stage_writes_one_offline_page_with_the_sample_and_the_hurt_queries(held_out, tmp_path, capsys):
    dataset, runs = held_out
    gallery = tmp_path / "reports" / "gallery.html"
    main(Paths(dataset=dataset, runs=runs, output=gallery))
    text = gallery.read_text(encoding="utf-8")
    root = ET.fromstring(text.split("\n", 1)[1])  # after <!DOCTYPE html>: well-formed markup
    assert list(gallery.parent.iterdir()) == [gallery]  # written atomically: no temporary left
    main(Paths(dataset=dataset, runs=runs, output=gallery))
    assert gallery.read_text(encoding="utf-8") == text  # the same inputs, the same bytes: no date, no random order
    assert "reports/gallery.html: 12 sampled queries, 3 where finetuning hurt" in capsys.readouterr().out

    header = "".join(root.find(".//header").itertext())
    assert f"{QUERIES} scored queries" in header and "16 pages" in header
    assert "base.trec (base embedder)" in header and "finetuned.trec (finetuned embedder)" in header
    assert "higher for 2, lower for 3 and the same for 9" in header

    sample = articles(root, "sample")
    assert len(sample) == SAMPLE_SIZE
    hurt = [article.get("data-query-id") for article in articles(root, "hurt")]
    assert hurt == ["q2", "q3", "q4"][:HURT_SIZE]  # the largest drop in reciprocal rank first


def test_hits_are_marked_with_their_rank(gallery):
    root = ET.fromstring(gallery.read_text(encoding="utf-8").split("\n", 1)[1])
    q2 = next(a for a in articles(root, "hurt") if a.get("data-query-id") == "q2")
    assert "rank 1 with the base embedder → rank 4 finetuned (worse)" in "".join(q2.itertext())
    answer = q2.find(".//div[@class='answer']/figure")
    assert answer.get("class") == "relevant" and "p2" in caption(answer)
    base, finetuned = figures(q2, "base embedder"), figures(q2, "finetuned embedder")
    assert [f.get("class") for f in base] == ["hit", None, None] and caption(base[0]).startswith("#1 p2 ✓ relevant")
    assert [f.get("class") for f in finetuned] == [None, None, None]  # rank 4: no hit in the top 3
    assert [caption(f).split()[0] for f in finetuned] == ["#1", "#2", "#3"]
    q3 = next(a for a in articles(root, "hurt") if a.get("data-query-id") == "q3")
    assert "rank 2 with the base embedder → not ranked finetuned (worse)" in "".join(q3.itertext())


def test_text_is_escaped_and_nothing_comes_from_outside_the_file(gallery):
    text = gallery.read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    markup = re.sub(r"data:image/jpeg;base64,[A-Za-z0-9+/=]*", "data:", text)  # the inline images aside
    assert not re.search(r"https?:|//[\w.]|<link|@import|url\(", markup)
    sources = re.findall(r'\ssrc="([^"]*)"', text)
    assert sources and all(source.startswith("data:image/jpeg;base64,") for source in sources)
    root = ET.fromstring(text.split("\n", 1)[1])
    script = next(a for a in root.iter("article") if a.get("data-query-id") == "q5")
    assert SCRIPT_QUERY in script.findtext("h3")  # the text itself, shown as written


def test_only_the_pages_shown_are_read_and_thumbnails_stay_small(held_out, gallery):
    dataset, _ = held_out
    assert set(page_images(dataset, {"p1", "p12"})) == {"p1", "p12"}  # from two of the four shards
    with pytest.raises(ValueError, match=r"'p99' ranked in the runs are not in the corpus; .*dvc repro evaluate"):
        page_images(dataset, {"p1", "p99"})
    sources = set(re.findall(r'src="data:image/jpeg;base64,([^"]*)"', gallery.read_text(encoding="utf-8")))
    assert 0 < len(sources) <= 16  # one thumbnail per page shown
    for source in sources:
        data = base64.b64decode(source)
        with Image.open(io.BytesIO(data)) as thumbnail:
            assert thumbnail.format == "JPEG" and thumbnail.size == (THUMBNAIL_WIDTH, 289)  # 320 x 420, shrunk
        assert len(data) < 30_000


def test_when_finetuning_hurt_no_query_the_page_says_so(held_out, tmp_path):
    dataset, runs = held_out
    shutil.copy(runs / "base.trec", runs / "finetuned.trec")
    main(Paths(dataset=dataset, runs=runs, output=tmp_path / "gallery.html"))
    root = ET.fromstring((tmp_path / "gallery.html").read_text(encoding="utf-8").split("\n", 1)[1])
    assert articles(root, "hurt") == []
    assert "ranked no relevant page lower" in "".join(root.find(".//section[@id='hurt']").itertext())


def test_the_sample_is_seeded_and_in_the_sets_order(held_out):
    dataset, runs = held_out
    held = load_held_out(dataset)
    results = query_results(held, {s: load_ranking(runs / f"{s}.trec", held) for s in ("base", "finetuned")})
    assert [r.query_id for r in results] == [f"q{i}" for i in range(QUERIES)]  # q14 (score 0) and q15 not scored
    first = [r.query_id for r in sample_queries(results, 5, seed=0)]
    assert first == [r.query_id for r in sample_queries(results, 5, seed=0)]
    assert first == sorted(first, key=lambda q: int(q[1:])) and first != [r.query_id for r in results[:5]]
    assert len(sample_queries(results[:3], 12)) == 3


def test_a_missing_run_or_a_run_of_another_set_names_the_file_and_the_fix(held_out, tmp_path):
    dataset, runs = held_out
    (runs / "finetuned.trec").unlink()
    with pytest.raises(FileNotFoundError, match=r"finetuned.trec does not exist; run the evaluate stage first"):
        main(Paths(dataset=dataset, runs=runs, output=tmp_path / "gallery.html"))
    write_trec_run(runs / "finetuned.trec", {"other": {"p1": 1.0}}, "finetuned")
    with pytest.raises(
        ValueError, match=r"finetuned.trec ranks none of the 14 scored queries .*\(dvc repro evaluate\)"
    ):
        main(Paths(dataset=dataset, runs=runs, output=tmp_path / "gallery.html"))
    assert not (tmp_path / "gallery.html").exists()


def test_a_set_without_page_images_says_what_the_gallery_needs(held_out, tmp_path):
    dataset, runs = held_out
    ids = read_table(dataset / "corpus", columns=["id"])["id"].to_pylist()
    shutil.rmtree(dataset / "corpus")
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    write_shards(dataset / "corpus", [{"id": page, "text": "a page"} for page in ids], schema, shard_size=5)
    with pytest.raises(ValueError, match=r"no 'image' column; the gallery shows page images"):
        main(Paths(dataset=dataset, runs=runs, output=tmp_path / "gallery.html"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs a headless browser to draw the page: apt-get install chromium",
)
def test_a_real_browser_draws_the_thumbnails_and_the_hit_frames(gallery, tmp_path):
    shot = screenshot(gallery, tmp_path / "browser")
    with Image.open(shot) as image:
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) blank"
    counts = {colour: count for count, colour in colours}
    assert counts.get((0x1A, 0x7F, 0x37), 0) > 200, "no green hit frame drawn"
    assert counts.get((0x09, 0x69, 0xDA), 0) > 200, "no blue frame around the page that answers the query"


def screenshot(page: Path, profile: Path) -> Path:
    """Headless chromium's screenshot of `page` (1280 x 2000), with a throwaway profile and no network use."""
    assert CHROMIUM, "chromium is not installed: apt-get install chromium"
    profile.mkdir()
    shot = profile / "shot.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile / 'profile'}",
        "--window-size=1280,2000",
        f"--screenshot={shot}",
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-3000:]
    return shot
