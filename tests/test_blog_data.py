"""The blog profile's data: the eval corpus is built exactly as the reference post builds it."""

import pytest
from datasets import Image, load_from_disk

from tests.support.tiny_vlm import synthetic_dataset
from vdr.config.fetch import FetchLocal
from vdr.data.datasets import dataset_rows


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("vdr") / "dataset", train_rows=5, eval_rows=3)


def test_eval_corpus_ids_follow_the_post(dataset):
    fetch = FetchLocal(source="local", path=str(dataset))
    train, queries, documents, qrels, _ = dataset_rows(fetch)
    import pyarrow.parquet as pq

    evaluation = pq.read_table(next((dataset / "eval").glob("*.parquet"))).to_pylist()
    n = len(evaluation)
    assert [q["id"] for q in queries] == ["0", "1", "2"] and queries[1]["text"] == evaluation[1]["query"]
    assert len(documents) == 5 * n and qrels == {str(i): {str(i): 1} for i in range(n)}
    pages = {d["id"]: d["image"] for d in documents}
    for i in range(n):
        assert pages[str(i)] == evaluation[i]["image"]["bytes"]
        for k in range(4):
            assert pages[str(n * (k + 1) + i)] == evaluation[i][f"negative_{k}"]["bytes"]
    stored = load_from_disk(str(dataset / "train"))["train"].cast_column("negative_0", Image(decode=False))
    assert [row["query"] for row in train] == stored["query"] and set(train[0]) == {
        "id",
        "query",
        "image",
        "negative_0",
    }
    assert train[2]["negative_0"] == stored[2]["negative_0"]["bytes"]


def test_row_limits_and_missing_columns_are_named(dataset):
    fetch = FetchLocal(source="local", path=str(dataset), max_train_rows=2, max_eval_rows=1)
    train, queries, documents, _, _ = dataset_rows(fetch)
    assert len(train) == 2 and len(queries) == 1 and len(documents) == 5
    with pytest.raises(ValueError, match="missing column"):
        dataset_rows(FetchLocal(source="local", path=str(dataset), eval_negative_columns=["negative_9"]))
    with pytest.raises(ValueError, match="no folder for config 'dev'"):
        dataset_rows(FetchLocal(source="local", path=str(dataset), eval_config="dev"))
