"""OCR of image-only pages: tesseract reads a page rendered by vdr/data/pages.py, a second read comes from the
cache, a missing binary says how to install it, and vdr-eval scores a text model on an image-only set.

Needs Debian's tesseract-ocr (`apt-get install tesseract-ocr`); CI installs it (.ci/run), so there a
missing binary fails these tests instead of skipping them.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pyarrow as pa
import pytesseract
import pytest
import pytrec_eval
import yaml

from tests.support.evalsets import MODEL, beir_set, vdr_eval
from tests.support.repo import REPO
from vdr.data.ocr import TesseractMissingError, ocr_images
from vdr.data.pages import render_document
from vdr.data.reading import page_texts
from vdr.models.sources import resolve_model

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None and not os.environ.get("CI"),
    reason="needs tesseract: apt-get install tesseract-ocr",
)

DOCUMENTS = {
    "p1": (
        "statistics.mean",
        "Compute the arithmetic mean of an array along the given axis.\n\n"
        "The average is the sum of the elements divided by their number.",
    ),
    "p2": (
        "io.read_csv",
        "Read a comma-separated values file into a data frame.\n\nEach line of the file is one row of the table.",
    ),
    "p3": (
        "table.sort_values",
        "Sort the rows of a table by the values of one column.\n\nThe order is ascending unless told otherwise.",
    ),
    "p4": (
        "plot.histogram",
        "Draw a histogram of the values with a number of bins.\n\nEach bar counts the values that fall into its bin.",
    ),
    "p5": (
        "graph.shortest_path",
        "Find the shortest path between two nodes of a graph.\n\n"
        "Edges may carry weights that the path length adds up.",
    ),
}
QUERIES = {
    "q1": "average of the numbers in an array",
    "q2": "load a csv file",
    "q3": "plot a histogram of values",
    "q4": "shortest route between two graph nodes",
}
QRELS = {"q1": {"p1": 1}, "q2": {"p2": 1}, "q3": {"p4": 1}, "q4": {"p5": 1}}


@pytest.fixture(scope="module")
def pages():
    """PNG bytes of each document, typeset and rasterised as the render stage does (100 dpi)."""
    return {doc_id: render_document(title, body, dpi=100).png for doc_id, (title, body) in DOCUMENTS.items()}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_ocr_reads_the_words_of_a_rendered_page(pages, tmp_path):
    [text] = ocr_images([pages["p1"]], cache_dir=tmp_path)
    assert {"compute", "arithmetic", "mean", "array", "axis", "average", "elements"} <= words(text)


def test_the_second_read_comes_from_the_cache_without_tesseract(pages, tmp_path, monkeypatch):
    images = [pages["p2"], pages["p3"], pages["p2"]]  # a repeated page is read once
    seen_thread_limits = []
    real_image_to_string = pytesseract.image_to_string

    def counting(*args, **kwargs):
        seen_thread_limits.append(os.environ.get("OMP_THREAD_LIMIT"))
        return real_image_to_string(*args, **kwargs)

    monkeypatch.setattr(pytesseract, "image_to_string", counting)
    first = ocr_images(images, cache_dir=tmp_path, workers=2)
    assert seen_thread_limits == ["1", "1"]  # two distinct pages, one tesseract thread each
    assert first[0] == first[2] and "comma" in words(first[0]) and "ascending" in words(first[1])
    cached = {path.stem for path in tmp_path.rglob("*.txt")}
    assert cached == {hashlib.sha256(pages[p]).hexdigest() for p in ("p2", "p3")}

    monkeypatch.setattr(
        pytesseract, "image_to_string", lambda *args, **kwargs: pytest.fail("tesseract ran on a cached page")
    )
    assert ocr_images(images, cache_dir=tmp_path) == first


def test_a_missing_tesseract_says_how_to_install_it(pages, tmp_path, monkeypatch):
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "bin" / "tesseract"))
    with pytest.raises(TesseractMissingError, match="apt-get install tesseract-ocr") as error:
        ocr_images([pages["p1"]], cache_dir=tmp_path)
    assert "pip install pytesseract" in str(error.value) and str(tmp_path / "bin" / "tesseract") in str(error.value)


def test_page_texts_uses_the_text_layer_and_reads_an_empty_one_through_ocr(pages, tmp_path):
    with_text = pa.table({"id": ["p1"], "image": [pages["p1"]], "text": ["the text layer"]})
    assert page_texts(with_text, "set", ocr_cache=tmp_path) == ["the text layer"]
    screenshots = pa.table({"id": ["p1"], "image": [pages["p1"]], "text": [""]})  # what render writes for screenshots
    assert "arithmetic" in words(page_texts(screenshots, "set", ocr_cache=tmp_path)[0])


def image_only_set(pages, dataset):
    """A BEIR-layout set whose corpus has page images and no text."""
    corpus = {"id": list(pages), "image": list(pages.values())}
    return beir_set(dataset, corpus, {"id": list(QUERIES), "text": list(QUERIES.values())}, QRELS)


def test_vdr_eval_scores_a_text_model_on_an_image_only_set_through_ocr(pages, tmp_path):
    dataset = image_only_set(pages, tmp_path / "set")
    cache = tmp_path / "ocr-cache"
    vdr_eval(dataset, tmp_path, "--run-file", str(tmp_path / "run.trec"), "--ocr-cache", str(cache), model=MODEL)

    assert len(list(cache.rglob("*.txt"))) == len(pages)  # every page went through OCR
    metrics = json.loads((tmp_path / "m.json").read_text())["retrieve"]
    run = {}
    for line in (tmp_path / "run.trec").read_text().splitlines():
        query_id, _, doc_id, _, score, _ = line.split()
        run.setdefault(query_id, {})[doc_id] = float(score)
    direct = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10", "recall.1"}).evaluate(run)
    mean = lambda key: sum(direct[q][key] for q in QRELS) / len(QRELS)  # noqa: E731
    assert metrics["ndcg@10"] == pytest.approx(mean("ndcg_cut_10"), abs=1e-9)
    assert metrics["recall@1"] == pytest.approx(mean("recall_1"), abs=1e-9)
    assert metrics["recall@1"] == 1.0  # MiniLM finds each page from its OCR text


def test_an_unreadable_image_names_its_row(pages, tmp_path):
    corpus = pa.table({"id": ["good", "broken"], "image": [pages["p1"], b"not an image"]})
    with pytest.raises(RuntimeError, match="OCR of set, id 'broken' failed"):
        page_texts(corpus, "set", ocr_cache=tmp_path)


@pytest.mark.e2e  # the stage scripts as subprocesses
def test_the_stages_read_an_image_only_set_through_ocr(pages, tmp_path, stage_env):
    """embed_base then evaluate on an image-only set with the cpu profile's text model; the base embedder
    doubles as the 'finetuned' one, so its metrics from embed_base's embeddings must equal evaluate's own."""
    dataset = image_only_set(pages, tmp_path / "set")
    model = resolve_model(MODEL)
    cache, out = tmp_path / "ocr-cache", tmp_path / "out"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"]["top_k"] = 3  # the set has 5 pages
    params["evaluate"]["fusion_weight"] = 0.5  # a preset weight: this set has no validation split
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["--params", str(tmp_path / "params.yaml"), "--dataset", str(dataset), "--ocr-cache", str(cache)]
    for command in (
        [sys.executable, str(REPO / "stages/embed_base.py"), *common, "--output", str(out / "base")],
        [
            sys.executable,
            str(REPO / "stages/evaluate.py"),
            *common,
            "--base-embeddings",
            str(out / "base"),
            "--embedder",
            model,
            "--reranker",
            model,
            "--metrics",
            str(out / "m.json"),
            "--plots",
            str(out / "plots.json"),
            "--report",
            str(out / "results.md"),
            "--runs",
            str(out / "runs"),
        ],
    ):
        result = subprocess.run(command, cwd=tmp_path, env=stage_env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(list(cache.rglob("*.txt"))) == len(pages)
    metrics = json.loads((out / "m.json").read_text())
    assert metrics["base"] == metrics["finetuned"] and metrics["base"]["recall@1"] == 1.0
