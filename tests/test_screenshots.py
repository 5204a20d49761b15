"""Screenshots are decoded a chunk at a time when the encoders read them (vdr/data/evalset.py Screenshots,
vdr/retrieval/encode.py encode_documents), never all at once: the same embeddings, a bounded number of decoded
pages."""

import numpy as np
import pyarrow as pa
import pytest

import vdr.retrieval.encode
from tests.support.images import png
from vdr.data.reading import Screenshots, read_pages
from vdr.retrieval.encode import Spill, encode_documents


class MeanColour:
    """A stand-in embedder: a page's mean RGB colour, unit length; it records how many pages each call got."""

    def __init__(self):
        self.calls = []

    def get_embedding_dimension(self):
        return 3

    def encode_document(self, pages, batch_size, **options):
        self.calls.append(len(pages))
        vectors = np.array([np.asarray(page, dtype=np.float32).mean(axis=(0, 1)) + 1 for page in pages])
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def pages(count: int) -> pa.Table:
    return pa.table(
        {"id": [f"p{n}" for n in range(count)], "image": [png((n * 7 % 256, n * 13 % 256, 90)) for n in range(count)]}
    )


def test_screenshots_decode_when_read_and_name_a_bad_page():
    table = pages(5)
    lazy = read_pages(table, "image", "corpus.parquet", lazy=True)
    eager = read_pages(table, "image", "corpus.parquet")
    assert isinstance(lazy, Screenshots) and len(lazy) == 5
    assert [np.asarray(p).tolist() for p in lazy[1:4]] == [np.asarray(p).tolist() for p in eager[1:4]]
    assert np.array_equal(np.asarray(lazy[-1]), np.asarray(eager[4])) and np.array_equal(lazy[np.int64(2)], eager[2])
    broken = pa.table({"id": ["ok", "bad"], "image": [png(), b"not an image"]})
    lazy = read_pages(broken, "image", "corpus.parquet", lazy=True)
    assert lazy[0].size == (32, 48)
    with pytest.raises(ValueError, match=r"corpus.parquet, id 'bad'"):
        lazy[1]


@pytest.mark.parametrize("max_memory_mb", [None, 1e-4])  # in memory, and streamed to a memmap
def test_encoding_decodes_a_chunk_at_a_time_with_the_same_embeddings(tmp_path, monkeypatch, max_memory_mb):
    monkeypatch.setattr(vdr.retrieval.encode, "DECODED_PAGES_PER_CHUNK", 8)
    table = pages(30)
    eager = MeanColour().encode_document(read_pages(table, "image", "corpus.parquet"), batch_size=4)
    model = MeanColour()
    lazy = read_pages(table, "image", "corpus.parquet", lazy=True)
    with Spill(max_memory_mb or 1024, tmp_path) as spill:
        embeddings = encode_documents(model, lazy, 4, spill=spill if max_memory_mb else None)
        assert np.array_equal(np.asarray(embeddings), eager)
        assert isinstance(embeddings, np.memmap) == bool(max_memory_mb)
    assert max(model.calls) <= 8 and sum(model.calls) == 30  # never more than a chunk of decoded pages
