"""Nothing silent: each kind of bad input to the stages that read the held-out set (EvalSet.load: embed_base,
evaluate, train_embedder) and to `vdr-eval` stops with one sentence that names the file, row, id or key and the fix,
or is skipped, counted and reported. One test per case (docs/reliability.md lists them)."""

import subprocess
import sys

import huggingface_hub.constants
import pyarrow as pa
import pytest
import pytrec_eval
from PIL import Image

from tests.support.evalsets import PAGES, QUERIES, beir_set, vdr_eval
from tests.support.hub_server import HubServer
from tests.support.images import png
from tests.support.repo import REPO, read_trec_run, stage_environment
from vdr.data.evalset import EvalSet
from vdr.data.reading import read_pages
from vdr.errors import fields_under
from vdr.evaluation.metrics import write_trec_run
from vdr.io.beir import load_beir
from vdr.io.qrels import read_qrels
from vdr.models.loading import load_embedder
from vdr.models.reranker import load_reranker

QRELS = "query-id\tcorpus-id\tscore\nq1\tp1\t1\nq2\tp2\t1\nq3\tp4\t1\n"  # the file's text


def beir(folder, corpus: pa.Table | None = None, queries: pa.Table | None = None, qrels: str | bytes = QRELS):
    """A BEIR-layout set: corpus.parquet (id, text), queries.parquet (id, text), qrels.tsv as given (raw text or
    bytes, so that duplicates and bad encodings can be written)."""
    corpus = corpus or pa.table({"id": list(PAGES), "text": list(PAGES.values())})
    return beir_set(folder, corpus, queries or pa.table({"id": list(QUERIES), "text": list(QUERIES.values())}), qrels)


def invalid_utf8(cells: list[bytes]) -> pa.Array:
    """A string column holding bytes that are not UTF-8, as a writer that does not validate leaves it."""
    return pa.array(cells, pa.binary()).view(pa.string())


# --- 1. data that dropped out quietly ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \t"])
def test_an_empty_query_is_named_with_its_file_and_id(tmp_path, text):
    queries = pa.table({"id": ["q1", "q2", "q3"], "text": ["average of numbers", text, "plot a histogram"]})
    dataset = beir(tmp_path / "set", queries=queries)
    message = r"set/queries.parquet: query id 'q2' has an empty text; give it its text, or drop the query"
    with pytest.raises(ValueError, match=message):
        EvalSet.load(dataset)
    with pytest.raises(ValueError, match=message):
        vdr_eval(dataset, tmp_path)


def test_queries_without_a_relevant_page_are_skipped_counted_and_left_out_of_every_mean(tmp_path, capsys):
    queries = pa.table({"id": ["q1", "q2", "q3", "q4"], "text": [*QUERIES.values(), "sort a table"]})
    qrels = "query-id\tcorpus-id\tscore\nq1\tp1\t2\nq1\tp3\t0\nq2\tp2\t0\nq3\tp4\t1\n"  # q2: none > 0; q4: no line
    dataset = beir(tmp_path / "set", queries=queries, qrels=qrels)

    evalset = EvalSet.load(dataset)
    assert evalset.query_ids == ["q1", "q3"] and set(evalset.qrels) == {"q1", "q3"}
    assert evalset.skipped == {"queries_without_qrels": 1, "queries_without_relevant_page": 1}
    assert "(queries not scored: 1 without a qrels line, 1 without a relevant page)" in capsys.readouterr().err

    result = vdr_eval(dataset, tmp_path, "--run-file", str(tmp_path / "run.trec"))
    assert result["held_out_set"] == {"queries": 2, "pages": 4, "queries_not_scored": evalset.skipped}
    metrics = result["retrieve"]
    run = read_trec_run(tmp_path / "run.trec")
    assert set(run) == {"q1", "q3"}
    scored = {"q1": {"p1": 2, "p3": 0}, "q3": {"p4": 1}}
    direct = pytrec_eval.RelevanceEvaluator(scored, {"ndcg_cut.10", "recall.1"}).evaluate(run)
    for ours, theirs in (("ndcg@10", "ndcg_cut_10"), ("recall@1", "recall_1")):
        assert metrics[ours] == pytest.approx(sum(direct[q][theirs] for q in scored) / 2, abs=1e-9)


def test_qrels_without_any_positive_judgement_are_an_error(tmp_path):
    dataset = beir(tmp_path / "set", qrels="query-id\tcorpus-id\tscore\nq1\tp1\t0\nq2\tp2\t-1\n")
    with pytest.raises(ValueError, match=r"set/qrels.tsv: no query has a relevant page \(a score > 0\)"):
        EvalSet.load(dataset)


def test_a_duplicate_qrels_line_is_named_with_both_line_numbers(tmp_path):
    dataset = beir(tmp_path / "set", qrels=QRELS + "q1\tp1\t0\n")
    message = r"qrels.tsv, line 5: query-id 'q1', corpus-id 'p1' is already judged on line 2; keep one line per pair"
    with pytest.raises(ValueError, match=message):
        read_qrels(dataset / "qrels.tsv")
    with pytest.raises(ValueError, match=message):
        vdr_eval(dataset, tmp_path)


def test_a_qrels_file_that_is_not_utf8_names_the_byte_offset(tmp_path):
    qrels = "query-id\tcorpus-id\tscore\nq1\tp1\t1\nq2\tp2\t1\nq3\tp4\t1\n".encode().replace(b"p4", b"p\xe94")
    dataset = beir(tmp_path / "set", qrels=qrels)
    offset = qrels.index(b"\xe9")
    message = rf"qrels.tsv: not UTF-8 text \(byte b'\\xe9' at byte offset {offset}, line 4\); save the file as UTF-8"
    with pytest.raises(ValueError, match=message):
        EvalSet.load(dataset)


def test_a_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    dataset = beir(tmp_path / "set", qrels=b"\xef\xbb\xbf" + QRELS.encode())
    assert read_qrels(dataset / "qrels.tsv") == {"q1": {"p1": 1}, "q2": {"p2": 1}, "q3": {"p4": 1}}


# --- 2. ids a TREC run file cannot hold ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "run, message",
    [
        ({"q 1": {"p1": 0.5}}, "query id 'q 1'"),
        ({"q1": {"p\t1": 0.5}}, r"doc id 'p\\t1'"),
        ({"q1": {"": 0.5}}, "doc id ''"),
    ],
)
def test_write_trec_run_rejects_ids_it_cannot_write(tmp_path, run, message):
    with pytest.raises(ValueError, match=rf"run.trec: {message} is empty or contains whitespace"):
        write_trec_run(tmp_path / "run.trec", run, "tag")
    assert not (tmp_path / "run.trec").exists()


@pytest.mark.parametrize(
    "corpus_ids, query_ids, message",
    [
        (
            ["p1", "page 2", "p3", "p4"],
            list(QUERIES),
            r"corpus.parquet, row 1: corpus id 'page 2' is empty or contains",
        ),
        (list(PAGES), ["q1", "q\t2", "q3"], r"queries.parquet, row 1: query id 'q\\t2' is empty or contains"),
        (["p1", "", "p3", "p4"], list(QUERIES), r"corpus.parquet, row 1: corpus id '' is empty or contains"),
        (list(PAGES), ["q1", None, "q3"], r"queries.parquet: row 1 has no query id \(null\)"),
    ],
)
def test_ids_a_trec_run_cannot_hold_are_rejected_at_load_time(tmp_path, corpus_ids, query_ids, message):
    corpus = pa.table({"id": corpus_ids, "text": list(PAGES.values())})
    queries = pa.table({"id": query_ids, "text": list(QUERIES.values())})
    with pytest.raises(ValueError, match=message):
        load_beir(beir(tmp_path / "set", corpus, queries, qrels="query-id\tcorpus-id\tscore\nq1\tp1\t1\n"))


# --- 3. vdr-eval's unclear errors ------------------------------------------------------------------------------


def image_set(folder, images: list):
    corpus = pa.table({"id": list(PAGES), "image": pa.array(images, pa.binary())})
    return beir(folder, corpus=corpus)


def test_a_corrupt_page_image_names_the_corpus_file_and_the_page(tmp_path):
    dataset = image_set(tmp_path / "set", [png(), b"\x89PNG\r\n\x1a\nnot really a png", png(), png()])
    with pytest.raises(ValueError, match=r"set/corpus.parquet, id 'p2': the page image could not be decoded"):
        EvalSet.load(dataset).documents("image")


def test_a_corrupt_page_image_read_through_ocr_names_the_page(tmp_path):
    pytest.importorskip("pytesseract")
    dataset = image_set(tmp_path / "set", [png(), b"not an image", png(), png()])
    message = r"OCR of .*set/corpus.parquet, id 'p2' failed: the page image could not be decoded .*replace it with"
    with pytest.raises(RuntimeError, match=message):
        vdr_eval(dataset, tmp_path, "--ocr-cache", str(tmp_path / "ocr"))


def test_an_oversized_page_image_names_the_page_and_how_to_shrink_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32 x 48 pixels is then a decompression bomb
    pages = pa.table({"id": ["big"], "image": [png()]})
    with pytest.raises(ValueError, match=r"pages, id 'big': the page image is too large to decode .*shrink it to"):
        read_pages(pages, "image", "pages")


@pytest.mark.parametrize(
    "texts, message",
    [
        (["first", None, "third"], r"queries.parquet: column 'text', row 1 \(id 'q2'\) is null"),
        (pa.array([1, 2, 3]), r"queries.parquet: column 'text' holds int64 values, not text"),
        (invalid_utf8([b"first", b"s\xffecond", b"third"]), r"column 'text', row 1 \(id 'q2'\) is not UTF-8 text"),
    ],
)
def test_a_query_cell_that_is_not_text_is_named(tmp_path, texts, message):
    queries = pa.table({"id": list(QUERIES), "text": texts})
    with pytest.raises(ValueError, match=message):
        vdr_eval(beir(tmp_path / "set", queries=queries), tmp_path)


def test_a_corpus_text_cell_that_is_not_utf8_is_named(tmp_path):
    corpus = pa.table({"id": list(PAGES), "text": invalid_utf8([b"one", b"two", b"\xc3(", b"four"])})
    message = r"corpus.parquet: column 'text', row 2 \(id 'p3'\) is not UTF-8 text \(byte offset 0 in the cell\)"
    with pytest.raises(ValueError, match=message):
        EvalSet.load(beir(tmp_path / "set", corpus=corpus))


def test_a_null_page_text_among_texts_is_named(tmp_path):
    corpus = pa.table({"id": list(PAGES), "text": ["one", "two", None, "four"]})
    message = r"set/corpus.parquet: column 'text', row 2 \(id 'p3'\) is null while other pages have text"
    with pytest.raises(ValueError, match=message):
        vdr_eval(beir(tmp_path / "set", corpus=corpus), tmp_path)


@pytest.mark.parametrize("texts", [["", "", "", ""], ["", " ", "\n", ""]])
def test_an_all_empty_text_column_without_images_says_empty_not_missing(tmp_path, texts):
    corpus = pa.table({"id": list(PAGES), "text": texts})
    with pytest.raises(ValueError, match=r"corpus.parquet: the 'text' column is empty in every row"):
        vdr_eval(beir(tmp_path / "set", corpus=corpus), tmp_path)
    with pytest.raises(ValueError, match=r"pages: the 'text' column is empty in every row"):
        read_pages(corpus, "text", "pages")


# --- 4. model loading ------------------------------------------------------------------------------------------


def test_an_unknown_hub_model_offline_names_the_key_the_id_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    dataset = beir(tmp_path / "set")
    message = (
        r"--model: 'nobody-here/no-such-model' is not a local folder .* and the Hub model 'nobody-here/no-such-model' "
        r"could not be loaded from .* with HF_HUB_OFFLINE set: .*; give a local model folder"
    )
    with pytest.raises(OSError, match=message):
        vdr_eval(dataset, tmp_path, model="nobody-here/no-such-model")
    with pytest.raises(OSError, match=r"models.reranker: 'nobody-here/no-such-model' is not a local folder"):
        with fields_under("models"):
            load_reranker("nobody-here/no-such-model")


@pytest.mark.parametrize("loader", [load_embedder, load_reranker])
def test_a_missing_local_model_folder_is_named(tmp_path, loader):
    missing = tmp_path / "models" / "embedder"
    with pytest.raises(ValueError, match=rf"the model folder '{missing}' does not exist; check the path"):
        loader(str(missing))


# --- 5. a failed push ------------------------------------------------------------------------------------------

TOKEN = "hf_test_secret_0123456789"
PUSH = (
    "import sys\nfrom pathlib import Path\nfrom vdr.publish.hub import push_folder\n"
    "try:\n    push_folder(Path(sys.argv[1]), 'test-org/vdr-minilm', True, 'message')\n"
    "except RuntimeError as error:\n    print(error)\n    sys.exit(3)\n"
)


def push(tmp_path, endpoint: str, token: str) -> subprocess.CompletedProcess:
    """push_folder in a fresh process (huggingface_hub reads HF_ENDPOINT at import)."""
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "README.md").write_text("a model\n")
    env = dict(stage_environment(), HF_ENDPOINT=endpoint, HF_TOKEN=token, HF_HUB_DISABLE_XET="1")
    env.pop("HF_HUB_OFFLINE")
    command = [sys.executable, "-c", PUSH, str(tmp_path / "model")]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_a_push_to_an_unreachable_endpoint_names_the_endpoint_and_the_repo(tmp_path):
    result = push(tmp_path, "http://127.0.0.1:9", TOKEN)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith(
        "publishing model repo 'test-org/vdr-minilm' to http://127.0.0.1:9 (from HF_ENDPOINT) failed while creating "
        "the repo: ConnectError: "
    ), result.stdout
    assert "Traceback" not in result.stderr and TOKEN not in result.stdout + result.stderr


@pytest.mark.e2e  # a loopback Hub server
def test_a_push_the_server_refuses_names_its_status_and_message_never_the_token(tmp_path):
    with HubServer(token="hf_the_right_token") as hub:
        result = push(tmp_path, hub.endpoint, TOKEN)
    assert result.returncode == 3, result.stdout + result.stderr
    assert (
        f"publishing model repo 'test-org/vdr-minilm' to {hub.endpoint} (from HF_ENDPOINT) failed while creating the "
        "repo: the server answered 401 Unauthorized (Invalid credentials in Authorization header); check the network"
    ) in result.stdout
    assert TOKEN not in result.stdout + result.stderr
