"""A bad setting, named by the caller: the library names the field as it was given, the caller says where it lives.

    raise FieldError("top_k", "50 pages to rerank, but ...")   # a library function: its own argument's name
    with fields_under("evaluate"):                             # a stage: its params.yaml section
        check_rerank_depth(top_k, num_pages)                   # -> "evaluate.top_k: 50 pages to rerank, but ..."
    with fields_as({"top_k": "--top-k"}):                      # a command line: its options
        ...                                                    # -> "--top-k: 50 pages to rerank, but ..."

A field is a dotted name relative to where the value was given ("devices", "lora.target_modules"), or "" for the
value a function was handed itself (a model name: its loader names it). A note in parentheses may follow a name:
"embedder (the base of the adapter models/embedder)".
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator


class FieldError(ValueError):
    """A value that cannot be used, and the field that gave it; str(): "field: message" ("message" for "")."""

    def __init__(self, field: str, message: str):
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def under(prefix: str, field: str) -> str:
    """`field` named under `prefix`: "top_k" -> "evaluate.top_k", "" -> "evaluate", and a note keeps its space:
    "(the base of ...)" -> "models.embedder (the base of ...)"."""
    if not field:
        return prefix
    return f"{prefix} {field}" if field.startswith("(") else f"{prefix}.{field}"


@contextlib.contextmanager
def _renamed(rename: Callable[[str], str]) -> Iterator[None]:
    """A FieldError raised in the block goes on with its field renamed (and its traceback)."""
    try:
        yield
    except FieldError as error:
        error.field = rename(error.field)
        error.args = (error.field, error.message)
        raise


def fields_under(prefix: str):
    """FieldErrors raised in the block name their field under `prefix` (a params.yaml section, a model's name)."""
    return _renamed(lambda field: under(prefix, field))


def fields_as(names: dict[str, str]):
    """FieldErrors raised in the block with their field's first name replaced by `names` (a command line's options,
    a caller's own names); what follows it stays: {"embedder": "--model"} turns "embedder (the base of ...)" into
    "--model (the base of ...)". A name not in `names` is left as it is."""

    def rename(field: str) -> str:
        first = re.split(r"[. ]", field, maxsplit=1)[0]
        return names.get(first, first) + field[len(first) :]

    return _renamed(rename)
