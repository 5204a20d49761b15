"""A dataset in the reference layout, from the Hugging Face Hub (pinned revision) or a local folder.

Configs `train` and `eval`, one split each, a query column, a positive page column and hard-negative page columns
(tomaarsen/llamaindex-vdr-en-train-preprocessed). `dataset_rows` yields each row with its page images as bytes,
and counts (or stops at, naming the row) an empty query or a missing page image.
"""

from __future__ import annotations

from pathlib import Path


def load_config_split(fetch, config: str):
    """One config of the dataset that `fetch` names (source hub or local), as a `datasets.Dataset`."""
    if fetch.source == "hub":
        from datasets import load_dataset

        return load_dataset(fetch.dataset, config, split=fetch.split, revision=fetch.revision)
    return load_local_config(Path(fetch.path), config, fetch.split)


def load_local_config(root: Path, config: str, split: str):
    """`root/<config>/`: a `save_to_disk` folder (a Dataset, or a DatasetDict holding `split`) or Parquet files."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    folder = root / config
    if not folder.is_dir():
        found = (
            sorted(p.name for p in root.iterdir() if p.is_dir())
            if root.is_dir()
            else "nothing: the folder does not exist"
        )
        raise ValueError(
            f"fetch.path: '{root}' has no folder for config '{config}' (found {found}); "
            "one folder per config, as on the Hub"
        )
    if (folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists():
        loaded = load_from_disk(str(folder))
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise ValueError(f"fetch.split: '{folder}' holds splits {list(loaded)}, not '{split}'")
            loaded = loaded[split]
        return loaded
    files = sorted(str(p) for p in folder.rglob("*.parquet"))
    if not files:
        raise ValueError(
            f"fetch.path: '{folder}' is neither a `datasets.save_to_disk` folder nor a folder of .parquet files"
        )
    return load_dataset("parquet", data_files=files, split="train")


def image_bytes(value, where: str) -> bytes:
    """The encoded bytes of one image cell (a datasets Image column read with decode=False)."""
    if isinstance(value, dict) and value.get("bytes"):
        return value["bytes"]
    if isinstance(value, dict) and value.get("path") and Path(value["path"]).exists():
        return Path(value["path"]).read_bytes()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise ValueError(
        f"{where}: not an image (expected image bytes or a datasets Image cell, found {type(value).__name__})"
    )


def encoded_images(dataset, columns: list[str], where: str):
    """`dataset` with `columns` read as undecoded images; a missing column is named with what exists."""
    from datasets import Image

    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; found {dataset.column_names}")
    for column in columns:
        dataset = dataset.cast_column(column, Image(decode=False))
    return dataset


def dataset_rows(fetch, skipped: dict | None = None):
    """Training rows and the evaluation set, built as the reference post builds them.

    train: (id, query, image, negative_0..) from the train config; eval: for i in 0..n-1, query i,
    corpus id i -> eval[i].<positive> and n*(k+1)+i -> eval[i].<eval_negative_columns[k]>, qrels {i: {i: 1}}.
    A row with an empty query or a page cell that holds no image stops with its config and row number;
    with fetch.on_bad_row: skip it is dropped instead (an eval row's query; its other pages stay as
    distractors) and counted in `skipped`.
    """
    train = load_config_split(fetch, fetch.train_config)
    evaluation = load_config_split(fetch, fetch.eval_config)
    if fetch.max_train_rows is not None:
        train = train.select(range(min(fetch.max_train_rows, len(train))))
    if fetch.max_eval_rows is not None:
        evaluation = evaluation.select(range(min(fetch.max_eval_rows, len(evaluation))))
    where_train, where_eval = f"fetch: config '{fetch.train_config}'", f"fetch: config '{fetch.eval_config}'"
    for dataset, where in ((train, where_train), (evaluation, where_eval)):
        if fetch.query_column not in dataset.column_names:
            raise ValueError(f"{where}: missing the query column '{fetch.query_column}'; found {dataset.column_names}")
    train = encoded_images(train, [fetch.positive_column, *fetch.train_negative_columns], where_train)
    evaluation = encoded_images(evaluation, [fetch.positive_column, *fetch.eval_negative_columns], where_eval)

    def bad_row(message: str) -> None:
        if fetch.on_bad_row == "error":
            raise ValueError(
                f"{message} (or set fetch.on_bad_row: skip to drop such rows and count them in metrics/fetch.json)"
            )

    def image_or_none(value, where: str) -> bytes | None:
        try:
            return image_bytes(value, where)
        except ValueError as error:
            bad_row(str(error))
            return None

    bad_queries = {}
    for dataset, where in ((train, where_train), (evaluation, where_eval)):
        bad_queries[where] = set()
        for i, query in enumerate(dataset[fetch.query_column]):
            if not isinstance(query, str) or not query.strip():
                bad_row(f"{where}, row {i}: the query ('{fetch.query_column}') is empty; fix or drop that row")
                bad_queries[where].add(i)

    train_rows = []
    for i, row in enumerate(train):
        entry = {
            "id": f"train-{i}",
            "query": row[fetch.query_column],
            "image": image_or_none(row[fetch.positive_column], f"{where_train}, row {i}"),
        }
        for k, column in enumerate(fetch.train_negative_columns):
            entry[f"negative_{k}"] = image_or_none(row[column], f"{where_train}, row {i}, column {column}")
        if i not in bad_queries[where_train] and all(value is not None for value in entry.values()):
            train_rows.append(entry)

    n = len(evaluation)
    queries, documents, qrels = [], [], {}
    for i, row in enumerate(evaluation):
        page = image_or_none(row[fetch.positive_column], f"{where_eval}, row {i}")
        if page is not None:
            documents.append({"id": str(i), "image": page})
        if page is not None and i not in bad_queries[where_eval]:
            queries.append({"id": str(i), "text": row[fetch.query_column]})
            qrels[str(i)] = {str(i): 1}
    for k, column in enumerate(fetch.eval_negative_columns):
        for i, row in enumerate(evaluation):
            page = image_or_none(row[column], f"{where_eval}, row {i}, column {column}")
            if page is not None:
                documents.append({"id": str(n * (k + 1) + i), "image": page})
    if skipped is not None:
        skipped.update(
            train_rows=len(train) - len(train_rows),
            eval_queries=n - len(queries),
            eval_pages=n * (1 + len(fetch.eval_negative_columns)) - len(documents),
        )
    fingerprints = {"train": train._fingerprint, "eval": evaluation._fingerprint}
    return train_rows, queries, documents, qrels, fingerprints


def hub_commit(dataset: str, revision: str) -> str:
    """The commit a Hub revision resolves to now ('unknown' offline)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(dataset, revision=revision).sha or "unknown"
    except Exception:  # offline, or a server that does not say
        return "unknown"
