"""Relevance judgements (qrels) as the BEIR layout writes them: a TSV with the header query-id, corpus-id, score."""

from __future__ import annotations

import csv
import io
from pathlib import Path


def write_qrels(path: Path, qrels: dict[str, dict[str, int]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["query-id", "corpus-id", "score"])
        for query_id, documents in qrels.items():
            for corpus_id, score in documents.items():
                writer.writerow([query_id, corpus_id, score])


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file (qrels, a TREC run); a missing file or a byte that is not UTF-8 is a ValueError or
    FileNotFoundError naming the file (and the line)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist (or is not a file)")
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some editors write it, is not part of the text
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: not UTF-8 text (byte {data[error.start : error.start + 1]!r} at byte offset {error.start}, "
            f"line {line}); save the file as UTF-8"
        ) from None


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """{query id: {corpus id: score}} from a UTF-8 qrels.tsv; a line repeating a (query-id, corpus-id) pair is an
    error, not a silent overwrite."""
    text = read_utf8(path)
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    header = next(reader, None)
    if header != ["query-id", "corpus-id", "score"]:
        trec_run = header is not None and len(header) == 1 and len(header[0].split()) == 6
        raise ValueError(
            f"{path}: the header must be 'query-id<TAB>corpus-id<TAB>score', found {header}"
            + ("; this looks like a TREC run file (qid Q0 docid rank score tag), not qrels" if trec_run else "")
        )
    for line_number, row in enumerate(reader, start=2):
        if len(row) != 3:
            raise ValueError(f"{path}, line {line_number}: expected 3 tab-separated fields, found {row}")
        try:
            score = int(row[2])
        except ValueError:
            raise ValueError(f"{path}, line {line_number}: score '{row[2]}' is not an integer") from None
        pair = (row[0], row[1])
        if pair in first_line:
            raise ValueError(
                f"{path}, line {line_number}: query-id '{row[0]}', corpus-id '{row[1]}' is already judged on line "
                f"{first_line[pair]}; keep one line per pair"
            )
        first_line[pair] = line_number
        qrels.setdefault(row[0], {})[row[1]] = score
    return qrels
