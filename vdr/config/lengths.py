"""`max_seq_length: auto` in a stage's params: the one token limit the generate stage measured on the training pages
(vdr/models/lengths.py), read from data/pages/lengths.json.

    params = with_measured_lengths(params, Path("data/pages/lengths.json"))   # each `auto` replaced by the limit
    token_limit("auto", params.evaluate.max_seq_length, path)                 # what the results record of it
"""

from __future__ import annotations

import json
from pathlib import Path

from vdr.config.section import MEASURED_LENGTH_SECTIONS
from vdr.errors import FieldError

AUTO = "auto"
LENGTHS = "lengths.json"  # in data/pages, beside train/, validation/ and eval/


def read_measured_limit(path: Path) -> int:
    """The limit the generate stage chose (lengths.json's max_seq_length)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; max_seq_length auto is measured by `dvc repro generate`")
    value = json.loads(path.read_text()).get("max_seq_length")
    if not isinstance(value, int):
        raise FieldError(
            "max_seq_length",
            f"is auto, but {path} holds no measured limit (pages read as images are not measured); "
            "give a number of tokens, or null",
        )
    return value


def token_limit(asked, used: int | None, path: Path) -> dict:
    """What the results record of the token limit the embedders read at: the limit (None: the model's own), and,
    when it was auto, how it was chosen (from lengths.json at `path`)."""
    record = {"max_seq_length": used, "auto": asked == AUTO}
    if asked == AUTO:
        measured = json.loads(path.read_text())
        record |= {key: measured[key] for key in ("model_max_seq_length", "pages_longer")}
    return record


def auto_sections(params) -> list[str]:
    """The sections of `params` (those it holds) whose max_seq_length is auto."""
    return [
        name
        for name in MEASURED_LENGTH_SECTIONS
        if getattr(getattr(params, name, None), "max_seq_length", None) == AUTO
    ]


def with_measured_lengths(params, path: Path):
    """`params` with every max_seq_length that is auto replaced by the measured limit in `path`; unchanged (and
    `path` not read) when none is auto."""
    if not auto_sections(params):
        return params
    return with_limit(params, read_measured_limit(path), f"measured in {path}")


def with_limit(params, limit: int, where: str):
    """`params` with every max_seq_length that is auto replaced by `limit`, said once on the stage's output."""
    names = auto_sections(params)
    if names:
        keys = ", ".join(f"{name}.max_seq_length" for name in names)
        print(f"max_seq_length auto: {limit} tokens ({keys}; {where})")
    sections = {name: getattr(params, name).model_copy(update={"max_seq_length": limit}) for name in names}
    return params.model_copy(update=sections)
