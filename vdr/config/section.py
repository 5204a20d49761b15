"""Loading params.yaml: each stage validates the sections it reads, the check stage the whole file.

    params = load_sections(paths.params, models=Models, render=Render)   # params.models, params.render
    params.render.dpi

A typo, a wrong type or an out-of-range value stops the stage with one message that names the key,
the value found and what is allowed. No number may be infinite or NaN (YAML `.inf`, `.nan`): such a
parameter can only make training diverge or fail. A stage imports the schema of its own sections only, so a
change to another section's schema does not rerun it; checks across sections, and unknown sections, are the
check stage's (vdr/config/params.py), which runs before any stage.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model


def _not_a_bool(value):
    """YAML true or false where a number is expected: pydantic's lax mode would read it as 1 or 0 (`epochs: true`
    would train one epoch, `seed: true` seed with 1)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not the boolean {str(value).lower()}")
    return value


Int = Annotated[int, BeforeValidator(_not_a_bool)]  # every integer of every section: true and false are refused
Float = Annotated[float, BeforeValidator(_not_a_bool)]  # the same, still taking an integer (learning_rate: 1)


def _token_limit(value):
    """An embedder's max_seq_length: a number of tokens (at least 8), null (the model's own), or auto (measured from
    the training pages: vdr/models/lengths.py)."""
    if value is None or value == "auto" or (isinstance(_not_a_bool(value), int) and value >= 8):
        return value
    raise ValueError(f"must be a number of tokens (at least 8), null (the model's own) or auto (found {value!r})")


TokenLimit = Annotated[Union[Literal["auto"], int, None], BeforeValidator(_token_limit)]
MEASURED_LENGTH_SECTIONS = ("mine", "mine_reranker", "train_embedder", "evaluate")  # max_seq_length: TokenLimit


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ParamsError(ValueError):
    pass


FETCH_SOURCES = ("docstrings", "hub", "local", "documents")


def _union_member(part) -> bool:
    """Whether a part of an error's location is pydantic's name for a member of an `Int | Float` union."""
    return part in ("int", "float") or str(part).startswith("function-before[_not_a_bool(),")


def _describe(error: dict) -> str:
    location = list(error["loc"])
    if location[:1] == ["fetch"] and len(location) > 1 and location[1] in FETCH_SOURCES:
        del location[1]  # pydantic names the union member; the user knows it as fetch.source
    if error["type"] == "union_tag_invalid":
        location.append("source")
    if location and _union_member(location[-1]):
        del location[-1]  # the member of a `int | float` union (save_steps: a count or a fraction)
    key = ".".join(str(part) for part in location)
    if not key:  # a check across sections names its keys itself
        return error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (a typo?); remove it or check the spelling against params.yaml's sections"
    elif error["type"] == "finite_number":
        message = "must be a finite number; YAML .inf and .nan are not allowed"
    elif error["type"] == "missing":
        return f"{key}: missing; add it to params.yaml"
    elif error["type"] == "value_error":  # a check across the keys of one section names them itself
        return f"{key}: {message.removeprefix('Value error, ')}"
    return f"{key}: {message} (found {value!r})"


class Sections(BaseModel):
    """Some sections of params.yaml, as `load_sections` returns them; the rest of the file is not read."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    @property
    def late_interaction(self):
        """The train_multivector section when late interaction is part of this run; else None."""
        section = getattr(self, "train_multivector", None)
        return section if section is not None and section.enabled else None


def read_params(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run the stage from the repository root, where params.yaml lives")
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def validated(schema: type[BaseModel], raw: dict, path: str | Path):
    """`raw` validated by `schema`, or one ParamsError naming every bad key of `path`."""
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        problems = "\n  ".join(dict.fromkeys(_describe(e) for e in error.errors()))  # once per union member
        raise ParamsError(f"{path}: invalid parameters:\n  {problems}") from None


def load_sections(path: str | Path, **schemas) -> Sections:
    """The sections `schemas` names (section=Schema; `Schema | None` for one that may be absent), validated."""
    fields = {}
    for name, schema in schemas.items():
        optional = isinstance(schema, types.UnionType) and type(None) in typing.get_args(schema)
        fields[name] = (schema, None if optional else ...)
    return validated(create_model("Sections", __base__=Sections, **fields), read_params(path), path)
