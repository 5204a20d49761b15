"""The `render` section: pages typeset or normalised, and written as Parquet shards."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vdr.config.section import Int, Section


class Render(Section):
    dpi: Int | None = Field(None, ge=36, le=600, description="Dots per inch of typeset and PDF pages.")
    shard_size: Int = Field(ge=1, description="Pages per Parquet shard.")
    workers: Int = Field(ge=1, description="Processes rendering pages side by side.")
    max_pixels: Int | None = Field(None, ge=784, description="Page images above this many pixels are scaled down.")
    on_bad_page: Literal["error", "skip"] = Field("error", description="A page that fails to render: stop or drop it.")
