"""Your own documents (fetch.source: documents): a folder of PDFs to generated queries to a finetuned, measured
retriever, through the real stages and `dvc exp run -S profile=documents ...` exactly as the README writes it,
against a loopback OpenAI-compatible server that also fails, stalls and answers badly for some pages."""

import io
import json
import os
import random
import shutil
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fpdf import FPDF
from PIL import Image, ImageDraw

import vdr.data.folder
from benchmarks.query_server import answer
from stages.render import render_documents
from tests.support.openai_server import ChatServer, Reply
from tests.support.repo import REPO, STAGES, TINY, commit_all, copy_project, ran_stages, run
from vdr.config.fetch import FetchDocuments
from vdr.config.profiles import compose
from vdr.config.render import Render
from vdr.data.documents import page_rows, read_documents, split_documents
from vdr.data.folder import folder_fingerprint, scan_folder
from vdr.data.sources import fetch_documents
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
    before = folder_fingerprint(folder, cache_dir=tmp_path / "cache")
    assert folder_fingerprint(folder, cache_dir=tmp_path / "cache") == before
    write_pdf(folder / "new.pdf", ["a new manual"])
    assert folder_fingerprint(folder, cache_dir=tmp_path / "cache") != before
    with pytest.raises(ValueError, match=r"^fetch\.path: .* is not a folder"):
        with fields_under("fetch"):
            folder_fingerprint(tmp_path / "missing")


def raw_pdf(pages: int, count: int | None = None, size: tuple[float, float] = (612, 792)) -> bytes:
    """A PDF written object by object: `pages` pages in its page tree, which claims `count` (default: `pages`)."""
    content = b"BT /F1 24 Tf 72 72 Td (A page) Tj ET"
    font = "<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {count or pages} >>"]
    for i in range(pages):
        media, contents = f"[0 0 {size[0]} {size[1]}]", f"{4 + 2 * i} 0 R"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox {media} /Contents {contents} /Resources {font} >>")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body.encode() if isinstance(body, str) else body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_a_file_replaced_with_the_same_size_and_modification_time_changes_the_fingerprint(tmp_path, monkeypatch):
    """Content decides: `cp -p`, `rsync -t` or a restore from a backup keep the size and the modification time, and
    the change time (which no call can set back) tells the cached hash is stale."""
    folder, cache = make_folder(tmp_path / "docs", documents=3), tmp_path / "cache"
    hashed = []
    monkeypatch.setattr(
        vdr.data.folder,
        "file_sha256",
        lambda path, real=vdr.data.folder.file_sha256: hashed.append(path.name) or real(path),
    )
    fingerprint = lambda: folder_fingerprint(folder, cache_dir=cache)  # noqa: E731
    files = len(scan_folder(folder))

    # a file written just now is hashed again next time (the same clock tick could hold a second write)
    before = fingerprint()
    assert len(hashed) == files and fingerprint() == before and len(hashed) == 2 * files

    # once they are older than RACY_NS, the cache holds them: a repeat reads no file
    monkeypatch.setattr(vdr.data.folder, "RACY_NS", 0)
    time.sleep(0.05)
    hashed.clear()
    assert fingerprint() == before and len(hashed) == files
    hashed.clear()
    assert fingerprint() == before and hashed == []

    # touched only (a new modification time, the same bytes): hashed again, the same fingerprint, fetch does not rerun
    target = folder / "manual-1.pdf"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    time.sleep(0.05)
    assert fingerprint() == before and hashed == ["manual-1.pdf"]

    # other bytes of the same size, the modification time restored as `cp -p` restores it
    old = target.stat()
    replacement = tmp_path / "other.pdf"
    write_pdf(replacement, [page_text(99, 0)])
    content = replacement.read_bytes()[: old.st_size].ljust(old.st_size, b" ")
    assert content != target.read_bytes()
    with open(target, "r+b") as file:
        file.write(content)
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = target.stat()
    assert (new.st_size, new.st_mtime_ns, new.st_ino) == (old.st_size, old.st_mtime_ns, old.st_ino)
    assert new.st_ctime_ns != old.st_ctime_ns  # Linux: the write and the utime each set the change time to now
    time.sleep(0.05)
    changed = fingerprint()
    assert changed != before and hashed == ["manual-1.pdf"] * 2  # only the file whose change time moved is read

    # a corrupt or missing cache only means hashing again
    for entry in cache.iterdir():
        entry.write_text("{not json")
    hashed.clear()
    assert fingerprint() == changed and len(hashed) == files
    shutil.rmtree(cache)
    assert fingerprint() == changed and len(hashed) == 2 * files


def fetch_params(folder, **values) -> FetchDocuments:
    return FetchDocuments(source="documents", path=str(folder), eval_share=0.5, **values)


def render_params(**values) -> Render:
    return Render.model_validate({"dpi": 100, "max_pixels": 4_000_000, "shard_size": 50, "workers": 1} | values)


def test_a_huge_pdf_page_is_scaled_down_to_max_pixels(tmp_path):
    """A 14,400 x 14,400 pt page (PDF's largest) at 100 dpi would be 20,000 x 20,000 pixels: render.max_pixels bounds
    PDF pages as it bounds image pages, the aspect kept, and the pages scaled down are counted."""
    folder = tmp_path / "docs"
    write_pdf(folder / "a.pdf", [page_text(1, 0)])  # A4: 595.28 x 841.89 pt, 827 x 1170 pixels at 100 dpi
    pdf = FPDF(unit="pt", format=(14400, 14400))
    pdf.add_page()
    pdf.set_font("Helvetica", size=400)
    pdf.text(1000, 2000, "A poster")
    (folder / "posters").mkdir()
    pdf.output(str(folder / "posters" / "poster.pdf"))
    (folder / "scan.png").write_bytes(scanned_page("a scanned page"))  # 900 x 300: below the bound, kept as it is

    raw = tmp_path / "raw"
    raw.mkdir()
    fetch_documents(fetch_params(folder), raw)
    metrics = tmp_path / "render.json"
    render_documents(render_params(max_pixels=1_000_000), raw / "documents.parquet", tmp_path / "pages", metrics)
    rendered = json.loads(metrics.read_text())
    assert rendered["pages_scaled_down"] == 1 and rendered["skipped_files"] == []
    pages = pq.read_table(tmp_path / "pages").to_pylist()
    assert sorted((page["width"], page["height"]) for page in pages) == [(827, 1170), (900, 300), (1000, 1000)]
    poster = next(page for page in pages if page["width"] == page["height"])
    with Image.open(io.BytesIO(poster["image"])) as image:
        assert image.size == (1000, 1000)
    assert "A poster" in poster["text"]


def test_pdfs_with_no_pages_or_missing_pages_are_named_by_their_file(tmp_path):
    """A PDF with no page says so (PDFium's own words are "Failed to load document (PDFium: Success)"); a page tree
    claiming 5,000 pages over one is found by fetch; every message names the file, relative to fetch.path."""
    folder = tmp_path / "docs"
    for d in range(3):
        write_pdf(folder / f"manual-{d}.pdf", [page_text(d, 0)])
    (folder / "sub").mkdir()
    (folder / "sub" / "no pages.pdf").write_bytes(raw_pdf(0))
    (folder / "sub" / "claims.pdf").write_bytes(raw_pdf(1, count=5000))

    # fetch: skipped and counted, or (on_bad_document: error) stopped, naming the file
    _, _, bad = read_documents(scan_folder(folder), folder, "skip")
    assert dict(bad) == {
        "sub/claims.pdf": "page 2 of the 5,000 its page tree lists cannot be loaded (Failed to load page.): the file "
        "is damaged or truncated; repair it (e.g. `qpdf in.pdf out.pdf`) or remove it",
        "sub/no pages.pdf": "the PDF has no pages (its page tree is empty or missing)",
    }
    with pytest.raises(ValueError, match=r"sub/claims\.pdf: page 2 of the 5,000 .*on_bad_document: skip"):
        read_documents(scan_folder(folder), folder, "error")
    raw = tmp_path / "raw"
    raw.mkdir()
    fetched = fetch_documents(fetch_params(folder, on_bad_document="skip"), raw)
    assert [entry["file"] for entry in fetched["skipped_bad_documents"]] == ["sub/claims.pdf", "sub/no pages.pdf"]
    (folder / "sub" / "claims.pdf").unlink()
    with pytest.raises(ValueError, match=r"sub/no pages\.pdf: the PDF has no pages \(its page tree is empty"):
        read_documents(scan_folder(folder), folder, "error")

    # only the pages render will read must load: the first of a tree claiming 5,000 is enough for max_pages 1
    (folder / "sub" / "claims.pdf").write_bytes(raw_pdf(1, count=5000))
    documents, _, bad = read_documents(scan_folder(folder), folder, "skip", max_pages=1)
    assert [d.name for d in documents] == ["manual-0.pdf", "manual-1.pdf", "manual-2.pdf", "sub/claims.pdf"]

    # render, handed such a document all the same (a data/raw of before): the file and the page are named
    job = ("0123abcd", "sub/claims.pdf", "pdf", raw_pdf(1, count=5000), 3, 100, 4_000_000)
    message = r"^render: sub/claims\.pdf \(document '0123abcd'\) could not be rasterised: page 2 of 5,000: Pdfium"
    with pytest.raises(RuntimeError, match=message):
        page_rows(job)
    rows = pq.read_table(raw / "documents.parquet").to_pylist()  # 1 train, 2 held out
    held_out = next(i for i, row in enumerate(rows) if row["split"] == "eval")
    rows[held_out] |= {"name": "sub/claims.pdf", "content": raw_pdf(1, count=5000), "pages": 3}
    pq.write_table(pa.Table.from_pylist(rows), raw / "documents.parquet")
    paths = raw / "documents.parquet", tmp_path / "pages", tmp_path / "render.json"
    with pytest.raises(RuntimeError, match=r"render: sub/claims\.pdf .*page 2 of 5,000.*1 bad document\(s\) in all"):
        render_documents(render_params(), *paths)
    render_documents(render_params(on_bad_page="skip"), *paths)
    rendered = json.loads((tmp_path / "render.json").read_text())
    assert rendered["skipped_bad_documents"] == {"train": 0, "eval": 1}
    assert [entry["file"] for entry in rendered["skipped_files"]] == ["sub/claims.pdf"]
    assert "page 2 of 5,000" in rendered["skipped_files"][0]["why"]


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
        **{  # the profile's max_seq_length auto stays: measured from these pages
            section: {key: value for key, value in TINY[section].items() if key != "max_seq_length"}
            for section in ("mine", "mine_reranker", "train_embedder", "evaluate")
        },
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
@pytest.mark.minutes
def test_a_folder_of_pdfs_to_a_measured_retriever_through_dvc(documents_repo, tmp_path, stage_env):
    repo, folder = documents_repo, make_folder(tmp_path / "my documents")
    cache = tmp_path / "answers"
    env = stage_env | {
        "OPENAI_API_KEY": SECRET,
        "VDR_GENERATE_CACHE": str(cache),
        "VDR_FINGERPRINT_CACHE": str(tmp_path / "fingerprints"),
    }

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
        # the validation split: whole training documents, held out of training and of the test set
        validation_ids = pq.read_table(repo / "data/pages/validation/corpus").column("id").to_pylist()
        assert validation_ids and not {document(p) for p in validation_ids} & {
            document(p) for p in train_ids + corpus_ids
        }
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
        assert generated["queries"]["train"]["kept"] == len(train_ids) + generated["validation_queries"]
        assert len(train_ids) > 0 and generated["validation_queries"] > 0
        assert "inconsistent" in generated["queries"]["train"] and "inconsistent" not in generated["queries"]["eval"]

        metrics = json.loads((repo / "metrics/evaluate.json").read_text())
        for system in ("base", "finetuned", "finetuned+reranker"):
            assert 0.0 <= metrics[system]["ndcg@10"] <= 1.0
        assert metrics["system"]["chosen_on"] == "validation"  # the fusion weight, never from the held-out set
        card = (repo / "models/published/README.md").read_text()
        assert "your documents, 9 of them" in card and fetched["collection_sha256"] in card
        # max_seq_length auto: one limit measured from the training pages, trained, scored and published at
        lengths = json.loads((repo / "data/pages/lengths.json").read_text())
        limit = lengths["max_seq_length"]
        assert generated["token_lengths"]["pages"] == fetched["train_pages"] and limit % 32 == 0 and limit <= 256
        assert generated["token_lengths"]["max_seq_length"] == limit
        assert (
            metrics["token_limit"]
            == {"max_seq_length": limit, "auto": True, **lengths}
            == {
                "max_seq_length": limit,
                "auto": True,
                "model_max_seq_length": 256,
                "pages_longer": lengths["pages_longer"],
            }
        )
        for model in ("embedder", "published"):  # sentence-transformers saves the limit with the tokenizer
            assert (
                json.loads((repo / f"models/{model}/tokenizer_config.json").read_text())["model_max_length"] == limit
            )
        # the base as it is (on here) is its own row only when the limit is shorter than the model's own
        assert ("base_as_is" in metrics) == (limit < 256)
        assert f"{limit} tokens" in card and "chosen from the training pages" in card
        assert "chosen from the training pages" in (repo / "reports/results.md").read_text()
        assert generated["prompt_sha256"] in card and "`stand-in`" in card

        # 2. A rerun of generate asks only the pages that failed: an answered page is never asked twice (the
        # experiment stops at generate: what follows it reads its queries as it did in step 1)
        changed = [*documents_overrides(folder, server.url), "-S", "generate.min_query_chars=11"]
        output = run(["dvc", "exp", "run", *changed, "generate"], repo, env)
        assert ran_stages(output) == {"check", "generate"}
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
    """Only where the data comes from differs, the token limit (measured from the pages) and the base model's extra
    row: the models and their training are the cpu profile's."""
    documents = compose("documents", ["fetch.path=/data", "generate.model=m"])
    cpu = compose("cpu")
    differs = {key for key in documents if documents[key] != cpu.get(key)}
    assert differs == {
        "profile_name",
        "fetch",
        "render",
        "generate",
        "mine",
        "mine_reranker",
        "train_embedder",
        "evaluate",
    }
    for section in ("mine", "mine_reranker", "train_embedder"):  # the token limit, measured from the pages
        assert {k for k in documents[section] if documents[section][k] != cpu[section][k]} == {"max_seq_length"}
    assert {k for k in documents["evaluate"] if documents["evaluate"][k] != cpu["evaluate"][k]} == {
        "base_as_is",
        "max_seq_length",
    }
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
