import pyarrow as pa
import pytest

from vdr.io.beir import load_beir
from vdr.io.files import atomic_path
from vdr.io.qrels import read_qrels, write_qrels
from vdr.io.tables import read_table, write_shards, write_table


def make_beir(
    directory, qrels_text="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n", corpus_ids=("d1", "d2", "d3")
):
    directory.mkdir(parents=True, exist_ok=True)
    write_table(
        directory / "corpus.parquet", pa.table({"id": list(corpus_ids), "text": [f"page {i}" for i in corpus_ids]})
    )
    write_table(directory / "queries.parquet", pa.table({"id": ["q1", "q2"], "text": ["first", "second"]}))
    (directory / "qrels.tsv").write_text(qrels_text)
    return directory


def test_atomic_path_replaces_on_success_and_keeps_old_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    with atomic_path(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_works_for_directories(tmp_path):
    target = tmp_path / "folder"
    with atomic_path(target) as temporary:
        temporary.mkdir()
        (temporary / "a").write_text("1")
    with atomic_path(target) as temporary:
        temporary.mkdir()
        (temporary / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def test_shards_round_trip_in_order(tmp_path):
    rows = [{"id": str(i), "value": i} for i in range(25)]
    write_shards(tmp_path / "shards", rows, pa.schema([("id", pa.string()), ("value", pa.int64())]), shard_size=10)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert read_table(tmp_path / "shards").to_pylist() == rows


def test_qrels_round_trip_and_graded(tmp_path):
    write_qrels(tmp_path / "qrels.tsv", {"q1": {"d1": 2, "d2": 1}})
    assert read_qrels(tmp_path / "qrels.tsv") == {"q1": {"d1": 2, "d2": 1}}


def test_load_beir(tmp_path):
    corpus, queries, qrels = load_beir(make_beir(tmp_path / "set"))
    assert (
        corpus.num_rows == 3
        and queries == {"q1": "first", "q2": "second"}
        and qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    )


@pytest.mark.parametrize(
    "qrels_text, corpus_ids, message",
    [
        ("query-id\tcorpus-id\tscore\nq1\tmissing\t1\n", ("d1",), "corpus-id 'missing'"),
        ("query-id\tcorpus-id\tscore\nq9\td1\t1\n", ("d1",), "query-id 'q9'"),
        ("query\tdoc\tscore\nq1\td1\t1\n", ("d1",), "header"),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", ("d1",), "line 2"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\n", ("d1", "d1"), r"duplicate corpus id\(s\) 'd1'"),
        ("query-id\tcorpus-id\tscore\n", (), "empty"),
    ],
)
def test_bad_beir_data_is_named(tmp_path, qrels_text, corpus_ids, message):
    with pytest.raises(ValueError, match=message):
        load_beir(make_beir(tmp_path / "set", qrels_text, corpus_ids))


def test_missing_input_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.parquet does not exist"):
        read_table(tmp_path / "nothing.parquet")
