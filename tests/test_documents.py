"""Your own documents (fetch.source: documents): a folder of PDFs to generated queries to a finetuned, measured
retriever, through the real stages and `dvc exp run -S profile=documents ...` exactly as the README writes it,
against a loopback OpenAI-compatible server that also fails, stalls and answers badly for some pages."""

import io
import json
import random
import shutil

import pyarrow.parquet as pq
import pytest
import yaml
from fpdf import FPDF
from PIL import Image, ImageDraw

from benchmarks.query_server import answer
from tests.support.openai_server import ChatServer, Reply
from tests.support.repo import REPO, STAGES, TINY, commit_all, copy_project, ran_stages, run
from vdr.config.profiles import compose
from vdr.data.documents import read_documents, split_documents
from vdr.data.folder import folder_fingerprint, scan_folder
from vdr.errors import fields_under
from vdr.io.qrels import read_qrels

SECRET = "sk-loopback-secret-7c1e9a"
SYLLABLES = ["ka", "lo", "mi", "ter", "van", "du", "rex", "sol", "bri", "nap", "qui", "zor", "fel", "gam", "hup"]


def words(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))) for _ in range(count)]


def page_text(document: int, page: int) -> str:
    """Sentences over a vocabulary of the document's own, so that each page reads differently."""
    rng = random.Random(document * 100 + page)
    vocabulary = words(random.Random(document), 40)
    sentences = [
        " ".join(rng.choice(vocabulary) for _ in range(rng.randint(8, 14))).capitalize() + "." for _ in range(6)
    ]
    return f"Manual {document}, section {page}. " + " ".join(sentences)


def write_pdf(path, texts: list[str], password: str | None = None) -> None:
    pdf = FPDF()
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.set_font("Helvetica", size=11)
    for text in texts:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def scanned_page(text: str) -> bytes:
    image = Image.new("RGB", (900, 300), "white")
    ImageDraw.Draw(image).text((20, 20), text, fill="black", font_size=28)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_folder(folder, documents: int = 8, pages: int = 3):
    """`documents` PDFs of `pages` pages, a renamed copy of one, a scanned page, and three unreadable files."""
    for d in range(documents):
        write_pdf(folder / f"manual-{d}.pdf", [page_text(d, p) for p in range(pages)])
    (folder / "copies").mkdir()
    shutil.copy(folder / "manual-0.pdf", folder / "copies" / "manual-0 (copy).pdf")
    (folder / "scans").mkdir()
    (folder / "scans" / "page.png").write_bytes(scanned_page("Installing the valve assembly"))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a PDF")
    (folder / "empty.pdf").write_bytes(b"")
    write_pdf(folder / "locked.pdf", ["a locked page"], password="secret")
    (folder / "notes.txt").write_text("not a document")
    return folder


# --- fetch: found, identified by content, split by document -------------------------------------------------


def test_documents_are_identified_by_content_and_split_by_document(tmp_path):
    folder = make_folder(tmp_path / "docs")
    found = scan_folder(folder)
    assert len(found) == 13  # 8 PDFs, the copy, the scan, broken, empty, locked; not notes.txt
    documents, duplicates, bad = read_documents(found, folder, "skip")
    assert len(documents) == 9 and duplicates == [("manual-0.pdf", "copies/manual-0 (copy).pdf")]
    assert dict(bad).keys() == {"broken.pdf", "empty.pdf", "locked.pdf"}
    assert "encrypted" in dict(bad)["locked.pdf"] and "empty" in dict(bad)["empty.pdf"]
    with pytest.raises(ValueError, match=r"broken\.pdf: the PDF cannot be opened.*on_bad_document: skip"):
        read_documents(found, folder, "error")

    # renaming a file changes no id; the split is by document and seeded
    renamed = tmp_path / "renamed"
    shutil.copytree(folder, renamed)
    (renamed / "manual-3.pdf").rename(renamed / "renamed.pdf")
    again, _, _ = read_documents(scan_folder(renamed), renamed, "skip")
    assert {d.id for d in again} == {d.id for d in documents}
    train, held_out = split_documents(documents, eval_share=0.25, seed=42)
    assert len(held_out) == 2 and not {d.id for d in train} & {d.id for d in held_out}
    assert [d.id for d in split_documents(again, 0.25, 42)[1]] == [d.id for d in held_out]
    with pytest.raises(ValueError, match="at least 2"):
        split_documents(documents[:1], 0.2, 42)


def test_the_folder_fingerprint_changes_with_the_folder(tmp_path):
    folder = make_folder(tmp_path / "docs", documents=2)
    before = folder_fingerprint(folder)
    assert folder_fingerprint(folder) == before
    write_pdf(folder / "new.pdf", ["a new manual"])
    assert folder_fingerprint(folder) != before
    with pytest.raises(ValueError, match=r"^fetch\.path: .* is not a folder"):
        with fields_under("fetch"):
            folder_fingerprint(tmp_path / "missing")


# --- the whole profile through DVC ----------------------------------------------------------------------------


def bucket(page: str) -> int:
    return int(page[:8], 16) % 10


def responder(page: str, attempt: int, body: dict) -> Reply:
    """Most pages get the stand-in's queries; some always fail, answer nothing usable, stall once or are busy once."""
    kind = bucket(page)
    if kind == 0:
        return Reply(500, "the model crashed")
    if kind == 1:
        return Reply(200, "[1, 2, 3]")  # malformed: no query in it
    if kind == 2 and attempt == 0:
        return Reply(200, "late", delay_s=3)  # longer than generate.timeout_s: a timeout, then asked again
    if kind == 3 and attempt == 0:
        return Reply(503, "busy")
    return Reply(200, answer(body))


def documents_overrides(folder, url) -> list[str]:
    """The README's command, plus the tiny sizes of the other end-to-end tests."""
    overrides = ["profile=documents", f"fetch.path={folder}", f"generate.base_url={url}", "generate.model=stand-in"]
    tiny = {
        "fetch": {"eval_share": 0.3},
        "render": TINY["render"],
        "generate": {"with_text_layer": True, "timeout_s": 1, "max_retries": 2, "consistency_top_k": 8},
        **{section: TINY[section] for section in ("mine", "mine_reranker", "train_embedder", "evaluate")},
        "train_reranker": TINY["train_reranker"] | {"eval_queries": 2, "max_train_queries": None},
    }
    for section, values in tiny.items():
        for key, value in values.items():
            overrides.append(f"{section}.{key}={json.dumps(value) if isinstance(value, list) else value}")
    return [word for override in overrides for word in ("-S", override.replace("None", "null"))]


@pytest.fixture
def documents_repo(tmp_path, stage_env):
    repo = copy_project(tmp_path / "repo", folders=("stages", "vdr", "conf"))
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    run(["git", "init", "-q"], repo, stage_env)
    run(["dvc", "init", "-q"], repo, stage_env)
    run(["dvc", "config", "hydra.enabled", "true"], repo, stage_env)
    commit_all(repo, stage_env, "project")
    return repo


@pytest.mark.e2e  # dvc exp run, a loopback server
def test_a_folder_of_pdfs_to_a_measured_retriever_through_dvc(documents_repo, tmp_path, stage_env):
    repo, folder = documents_repo, make_folder(tmp_path / "my documents")
    cache = tmp_path / "answers"
    env = stage_env | {"OPENAI_API_KEY": SECRET, "VDR_GENERATE_CACHE": str(cache)}

    with ChatServer(responder, with_body=True) as server:
        # 1. The whole pipeline from the folder, composed by DVC from conf/
        output = run(["dvc", "exp", "run", *documents_overrides(folder, server.url)], repo, env)
        assert ran_stages(output) == set(STAGES)
        first_requests = list(server.requests)

        fetched = json.loads((repo / "metrics/fetch.json").read_text())
        assert (fetched["documents"], fetched["train_documents"], fetched["eval_documents"]) == (9, 6, 3)
        assert len(fetched["duplicate_files"]) == 1 and len(fetched["skipped_bad_documents"]) == 3

        # train and held-out documents are disjoint, and every page of the held-out documents is in the corpus
        train_ids = pq.read_table(repo / "data/pages/train").column("id").to_pylist()
        corpus_ids = pq.read_table(repo / "data/pages/eval/corpus").column("id").to_pylist()
        document = lambda page_id: page_id.rsplit("-p", 1)[0]  # noqa: E731
        assert not {document(p) for p in train_ids} & {document(p) for p in corpus_ids}
        assert len(corpus_ids) == fetched["eval_pages"]
        assert all(set(pages) <= set(corpus_ids) for pages in read_qrels(repo / "data/pages/eval/qrels.tsv").values())

        # every page asked, answered or counted; each filter counted
        generated = json.loads((repo / "metrics/generate.json").read_text())
        pages_seen = {page for page, _, _ in first_requests}
        failing = {page for page in pages_seen if bucket(page) == 0}
        malformed = {page for page in pages_seen if bucket(page) == 1}
        assert (
            sum(generated["pages_asked"].values()) == len(pages_seen) == fetched["train_pages"] + fetched["eval_pages"]
        )
        assert generated["pages_without_queries"].get("failed", 0) == len(failing)
        assert generated["pages_without_queries"].get("malformed", 0) == len(malformed)
        assert failing and malformed and {page for page in pages_seen if bucket(page) in (2, 3)}  # each case occurred
        for counts in generated["queries"].values():
            assert {"generated", "too_short", "too_long", "duplicate", "verbatim_on_page", "kept"} <= counts.keys()
        assert generated["queries"]["train"]["kept"] == len(train_ids) > 0
        assert "inconsistent" in generated["queries"]["train"] and "inconsistent" not in generated["queries"]["eval"]

        metrics = json.loads((repo / "metrics/evaluate.json").read_text())
        for system in ("base", "finetuned", "finetuned+reranker"):
            assert 0.0 <= metrics[system]["ndcg@10"] <= 1.0
        card = (repo / "models/published/README.md").read_text()
        assert "your documents, 9 of them" in card and fetched["collection_sha256"] in card
        assert generated["prompt_sha256"] in card and "`stand-in`" in card

        # 2. A rerun of generate asks only the pages that failed: an answered page is never asked twice
        output = run(
            ["dvc", "exp", "run", *documents_overrides(folder, server.url), "-S", "generate.min_query_chars=11"],
            repo,
            env,
        )
        assert "generate" in ran_stages(output)
        asked_again = {page for page, _, _ in server.requests[len(first_requests) :]}
        assert asked_again == failing

    # 3. A document added to the folder, which DVC cannot see: the check's fingerprint changes, so fetch reruns
    write_pdf(folder / "a new manual.pdf", [page_text(50, 0)])
    assert ran_stages(run(["dvc", "repro", "--single-item", "check"], repo, env)) == {"check"}
    assert "modified:           metrics/check.json" in run(["dvc", "status", "fetch"], repo, env)

    # 4. The key went in the Authorization header only: in no file of the repository, the cache or any output
    assert {authorization for _, authorization, _ in server.requests} == {f"Bearer {SECRET}"}
    assert SECRET not in output
    for path in [*repo.rglob("*"), *cache.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the API key was written to {path}"


def test_the_documents_profile_trains_as_the_cpu_profile():
    """Only where the data comes from differs: the models and their training are the cpu profile's."""
    documents = compose("documents", ["fetch.path=/data", "generate.model=m"])
    cpu = compose("cpu")
    differs = {key for key in documents if documents[key] != cpu.get(key)}
    assert differs == {"profile_name", "fetch", "render", "generate"}
    assert yaml.safe_dump(documents["generate"]).count("backend: openai") == 1


@pytest.mark.e2e  # a loopback server
def test_a_server_that_does_not_answer_stops_generate_at_once_with_its_url():
    from stages.generate import make_backend
    from vdr.config.generate import Generate

    with ChatServer() as server:
        url = server.url
    generate = Generate(backend="openai", base_url=url, model="m", timeout_s=5)
    with pytest.raises(ConnectionError, match=f"nothing answers at {url}"):
        make_backend(generate, needed=True)
    assert make_backend(generate, needed=False) is None  # every answer cached: nothing is reached or loaded
