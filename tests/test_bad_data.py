"""Bad data stops with a message that names the row, the file or the id."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.render import _normalise
from vdr.corpus import dataset_rows
from vdr.params import FetchLocal
from vdr.pages import rasterise_first_page
from vdr.tiny_vlm import synthetic_dataset


def test_corrupt_image_bytes_name_the_page():
    with pytest.raises(RuntimeError, match="the image of 'page-7' could not be decoded"):
        _normalise(("page-7", b"\x89PNG\r\n\x1a\nnot really a png", 360_000))


def test_a_pdf_that_will_not_open_names_the_document(monkeypatch):
    import stages.render

    monkeypatch.setattr(stages.render, "render_document", lambda title, body, dpi: rasterise_first_page(b"%PDF-1.7 broken", dpi))
    with pytest.raises(RuntimeError, match="document 'doc-3' could not be typeset or rasterised"):
        stages.render._render(("doc-3", "title", "body", 72))


def test_empty_query_names_the_row(tmp_path):
    dataset = synthetic_dataset(tmp_path / "dataset", train_rows=4, eval_rows=2)
    eval_file = next((dataset / "eval").glob("*.parquet"))
    table = pq.read_table(eval_file)
    queries = table["query"].to_pylist()
    queries[1] = "   "
    pq.write_table(table.set_column(table.column_names.index("query"), "query", pa.array(queries)), eval_file)
    with pytest.raises(ValueError, match=r"config 'eval', row 1: the query \('query'\) is empty"):
        dataset_rows(FetchLocal(source="local", path=str(dataset)))
