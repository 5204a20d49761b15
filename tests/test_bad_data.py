"""Bad data stops with a message that names the row, the file or the id; where params allow it, the row is
skipped and counted in the stage's metrics."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import vdr.data.pages
from tests.support.repo import REPO
from tests.support.tiny_vlm import synthetic_dataset
from vdr.config.fetch import FetchLocal
from vdr.data.datasets import dataset_rows
from vdr.data.layout import write_layout
from vdr.data.pages import _normalise, _render, rasterise_first_page
from vdr.io.beir import load_beir


def test_corrupt_image_bytes_name_the_page():
    with pytest.raises(RuntimeError, match="the image of 'page-7' could not be decoded"):
        _normalise(("page-7", b"\x89PNG\r\n\x1a\nnot really a png", 360_000))


def test_a_pdf_that_will_not_open_names_the_document(monkeypatch):
    monkeypatch.setattr(
        vdr.data.pages, "render_document", lambda title, body, dpi: rasterise_first_page(b"%PDF-1.7 broken", dpi)
    )
    with pytest.raises(RuntimeError, match="document 'doc-3' could not be typeset or rasterised"):
        _render(("doc-3", "title", "body", 72))


def test_empty_query_names_the_row(tmp_path):
    dataset = synthetic_dataset(tmp_path / "dataset", train_rows=4, eval_rows=2)
    eval_file = next((dataset / "eval").glob("*.parquet"))
    table = pq.read_table(eval_file)
    queries = table["query"].to_pylist()
    queries[1] = "   "
    pq.write_table(table.set_column(table.column_names.index("query"), "query", pa.array(queries)), eval_file)
    with pytest.raises(ValueError, match=r"config 'eval', row 1: the query \('query'\) is empty"):
        dataset_rows(FetchLocal(source="local", path=str(dataset)))


# --- the render stage on a small raw folder: each kind of bad data is named, or skipped and counted ---

BODY = "A page long enough to typeset, with a paragraph of text about {name} and what it returns."


def raw_folder(
    root,
    documents=("doc-1", "doc-2", "doc-3"),
    qrels="query-id\tcorpus-id\tscore\nq:doc-1\tdoc-1\t1\nq:doc-2\tdoc-2\t1\n",
):
    """data/raw as fetch writes it for typeset documents: train.parquet and eval/ (documents, queries, qrels)."""
    (root / "eval").mkdir(parents=True)
    page = lambda name: {"id": name, "group": "g", "title": f"{name}()", "body": BODY.format(name=name)}  # noqa: E731
    pq.write_table(
        pa.Table.from_pylist([dict(page(f"train-{i}"), query=f"what does train {i} give") for i in range(3)]),
        root / "train.parquet",
    )
    schema = pa.schema([("id", pa.string()), ("group", pa.string()), ("title", pa.string()), ("body", pa.string())])
    pq.write_table(
        pa.Table.from_pylist([page(name) for name in documents], schema=schema), root / "eval" / "documents.parquet"
    )
    pq.write_table(
        pa.table({"id": ["q:doc-1", "q:doc-2"], "text": ["first question", "second question"]}),
        root / "eval" / "queries.parquet",
    )
    (root / "eval" / "qrels.tsv").write_text(qrels)
    write_layout(root, "docstrings", "typeset")
    return root


def render_params(tmp_path, **render):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["render"].update(workers=1, **render)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return str(tmp_path / "params.yaml")


def render(tmp_path, raw, **params):
    import stages.render

    stages.render.main(
        stages.render.Paths(
            params=render_params(tmp_path, **params),
            raw=raw,
            output=tmp_path / "pages",
            metrics=tmp_path / "render.json",
        )
    )
    return json.loads((tmp_path / "render.json").read_text())


def test_a_missing_column_names_the_file_and_the_column(tmp_path):
    raw = raw_folder(tmp_path / "raw")
    table = pq.read_table(raw / "train.parquet")
    pq.write_table(table.drop_columns(["body"]), raw / "train.parquet")
    with pytest.raises(ValueError, match=r"train.parquet: missing column\(s\) \['body'\]"):
        render(tmp_path, raw)


def test_duplicate_ids_are_named(tmp_path):
    raw = raw_folder(tmp_path / "raw", documents=("doc-1", "doc-2", "doc-2"))
    with pytest.raises(ValueError, match=r"documents.parquet: duplicate corpus id\(s\) 'doc-2'"):
        render(tmp_path, raw)


def test_qrels_naming_a_missing_page_are_named(tmp_path):
    raw = raw_folder(tmp_path / "raw", qrels="query-id\tcorpus-id\tscore\nq:doc-1\tdoc-9\t1\n")
    with pytest.raises(ValueError, match=r"qrels.tsv: corpus-id 'doc-9' \(query 'q:doc-1'\) is not in the corpus"):
        render(tmp_path, raw)


def test_an_empty_corpus_is_named(tmp_path):
    raw = raw_folder(tmp_path / "raw", documents=(), qrels="query-id\tcorpus-id\tscore\n")
    with pytest.raises(ValueError, match="documents.parquet: the corpus is empty"):
        render(tmp_path, raw)


def test_duplicate_query_ids_in_a_beir_set_are_named(tmp_path):
    dataset = tmp_path / "set"
    dataset.mkdir()
    pq.write_table(pa.table({"id": ["d1", "d2"], "text": ["one", "two"]}), dataset / "corpus.parquet")
    pq.write_table(pa.table({"id": ["q1", "q1"], "text": ["first", "again"]}), dataset / "queries.parquet")
    (dataset / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with pytest.raises(ValueError, match=r"queries.parquet: duplicate query id\(s\) 'q1'"):
        load_beir(dataset)


def broken_for(*doc_ids):
    """render_document that fails for these documents, as a PDF that will not open does."""
    from vdr.data.pages import render_document

    def render_document_or_fail(title, body, dpi):
        if title.split("(")[0] in doc_ids:
            return rasterise_first_page(b"%PDF-1.7 broken", dpi)
        return render_document(title, body, dpi)

    return render_document_or_fail


def test_a_bad_page_stops_render_by_default_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(vdr.data.pages, "render_document", broken_for("doc-2"))
    with pytest.raises(
        RuntimeError, match=r"document 'doc-2' could not be typeset or rasterised.*render.on_bad_page: skip"
    ):
        render(tmp_path, raw_folder(tmp_path / "raw"))
    assert not (tmp_path / "pages").exists()  # nothing half-written


def test_bad_pages_are_skipped_and_counted_when_params_allow(tmp_path, monkeypatch):
    monkeypatch.setattr(vdr.data.pages, "render_document", broken_for("doc-2", "train-1"))
    metrics = render(tmp_path, raw_folder(tmp_path / "raw"), on_bad_page="skip")
    assert metrics["skipped_bad_pages"] == {"train": 1, "eval": 1, "eval_queries_without_page": 1}
    assert metrics["train_pages"] == 2 and metrics["eval_pages"] == 2 and metrics["eval_queries"] == 1
    corpus, queries, qrels = load_beir(tmp_path / "pages" / "eval")
    assert corpus["id"].to_pylist() == ["doc-1", "doc-3"] and list(qrels) == ["q:doc-1"]


def test_an_empty_query_is_skipped_and_counted_when_params_allow(tmp_path):
    from datasets import DatasetDict, load_from_disk

    dataset = synthetic_dataset(tmp_path / "dataset", train_rows=4, eval_rows=2)
    train = load_from_disk(str(dataset / "train"))["train"]
    DatasetDict(
        {"train": train.map(lambda row, i: {"query": "" if i == 2 else row["query"]}, with_indices=True)}
    ).save_to_disk(str(tmp_path / "train"))
    shutil.rmtree(dataset / "train")
    (tmp_path / "train").rename(dataset / "train")
    eval_file = next((dataset / "eval").glob("*.parquet"))
    table = pq.read_table(eval_file)
    pq.write_table(
        table.set_column(table.column_names.index("query"), "query", pa.array([table["query"][0].as_py(), ""])),
        eval_file,
    )
    skipped = {}
    train, queries, documents, qrels, _ = dataset_rows(
        FetchLocal(source="local", path=str(dataset), on_bad_row="skip"), skipped
    )
    assert skipped == {"train_rows": 1, "eval_queries": 1, "eval_pages": 0}
    assert (
        [row["id"] for row in train] == ["train-0", "train-1", "train-3"]
        and list(qrels) == ["0"]
        and len(documents) == 10
    )


def test_no_training_rows_stop_render_naming_the_file(tmp_path):
    raw = raw_folder(tmp_path / "raw")
    table = pq.read_table(raw / "train.parquet")
    pq.write_table(table.slice(0, 0), raw / "train.parquet")
    with pytest.raises(ValueError, match=r"train.parquet: no training rows"):
        render(tmp_path, raw)
    assert not (tmp_path / "pages").exists()


def test_mined_triplets_without_a_column_stop_train_embedder_naming_file_and_column(tmp_path):
    import stages.train_embedder

    (tmp_path / "mined").mkdir()
    pq.write_table(pa.table({"query": ["q"], "positive": ["a page"]}), tmp_path / "mined" / "train.parquet")
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    paths = stages.train_embedder.Paths(
        params=tmp_path / "params.yaml",
        mined=tmp_path / "mined",
        output=tmp_path / "embedder",
        checkpoints=tmp_path / "checkpoints",
        live=tmp_path / "live",
    )
    with pytest.raises(ValueError, match=r"mined/train.parquet.*negative_1"):
        stages.train_embedder.main(paths)
    assert not (tmp_path / "embedder").exists()
