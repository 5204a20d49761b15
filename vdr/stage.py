"""A stage's command line: its paths (and a few options) as a small frozen dataclass with defaults.

    @dataclass(frozen=True)
    class Paths:
        params: Path = Path("params.yaml")
        output: Path = Path("data/pages")  # help text for --output

    if __name__ == "__main__":
        main(parse_args(Paths, __doc__))

Each field becomes an option (`output` -> `--output`, `ocr_cache` -> `--ocr-cache`) of the field's type;
its help text (and choices) from `field(metadata={"help": ..., "choices": ...})`. Tests call `main(Paths(...))`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path


def _converter(annotation):
    """str, int or Path from a field's annotation (`Path | None` -> Path)."""
    for kind in (Path, int, str):
        if annotation is kind or kind in typing.get_args(annotation):
            return kind
    raise TypeError(f"unsupported option type {annotation!r}")


def parse_args(arguments_class, description: str | None, argv: list[str] | None = None):
    """An instance of the dataclass `arguments_class` from the command line (defaults: the field defaults)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(arguments_class)
    for option in dataclasses.fields(arguments_class):
        parser.add_argument(
            "--" + option.name.replace("_", "-"),
            dest=option.name,
            type=_converter(hints[option.name]),
            default=option.default,
            choices=option.metadata.get("choices"),
            help=option.metadata.get("help", f"default: {option.default}"),
        )
    return arguments_class(**vars(parser.parse_args(argv)))


@dataclass(frozen=True)
class PageReading:
    """The options of every stage that reads pages (vdr/evalset.py):
    a text model reads image-only pages through OCR."""

    ocr_cache: Path | None = field(
        default=None, metadata={"help": "OCR cache folder (default $VDR_OCR_CACHE or ~/.cache/vdr/ocr)"}
    )
    ocr_workers: int | None = field(
        default=None, metadata={"help": "tesseract processes side by side (default: up to 4)"}
    )
