"""A stage's command line: its paths (and a few options) as a small frozen dataclass with defaults.

    @dataclass(frozen=True)
    class Paths:
        params: Path = Path("params.yaml")
        output: Path = Path("data/rendered")  # help text for --output

    if __name__ == "__main__":
        with stage_process("render"):
            main(parse_args(Paths, __doc__))

Each field becomes an option (`output` -> `--output`, `ocr_cache` -> `--ocr-cache`) of the field's type;
its help text (and choices) from `field(metadata={"help": ..., "choices": ...})`. Tests call `main(Paths(...))`.

`stage_process(name)` makes a stage one process that cannot run twice or outlive `dvc`: it holds an
exclusive lock for the stage (a second copy stops at once, naming the first one's pid), and when DVC
started it (DVC sets DVC_STAGE) it ends with SIGTERM, on Linux, when `dvc` dies, so a killed `dvc` leaves no
stage running orphaned on the outputs the next `dvc repro` will write. `dvc` runs a stage's cmd through
`$SHELL -c`; bash replaces itself with the command, /bin/sh (dash) stays between them, so the stage watches
the nearest ancestor that is not a shell: the kernel's parent-death signal when that is its parent, else a
thread waiting on the ancestor's pidfd. It also keeps torch's threads within an OMP_THREAD_LIMIT of the environment
(`within_thread_limit`), and names the stage on every progress bar the body shows (`progress_label`):
`evaluate: encoding 2,000 pages (models/embedder)`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from vdr.io.processes import die_with_dvc, inside_distributed_launch, lock_folder, within_thread_limit


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
    """The options of every stage that reads pages (vdr/data/evalset.py):
    a text model reads image-only pages through OCR."""

    ocr_cache: Path | None = field(
        default=None, metadata={"help": "OCR cache folder (default $VDR_OCR_CACHE or ~/.cache/vdr/ocr)"}
    )
    ocr_workers: int | None = field(
        default=None, metadata={"help": "tesseract processes side by side (default: up to 4)"}
    )


_current_stage: str | None = None  # the stage stage_process runs in this process


def current_stage() -> str | None:
    """The stage this process runs (`stage_process`); None outside one (vdr-eval, a benchmark, a test)."""
    return _current_stage


def progress_label(what: str) -> str:
    """A progress bar's label: what the loop processes, after the stage that runs it
    (`progress_label("encoding 2,000 pages (models/embedder)")` in evaluate: "evaluate: encoding 2,000 pages ...")."""
    return f"{_current_stage}: {what}" if _current_stage else what


@contextlib.contextmanager
def stage_process(name: str):
    """Run the body as the one process of stage `name`: it dies with its parent, never runs twice at once, and
    stops on bad input with its one-sentence message instead of a traceback (VDR_TRACEBACK=1 shows it)."""
    global _current_stage
    if "DVC_STAGE" in os.environ:  # started by `dvc repro` / `dvc exp run`: end with it (a shell's nohup still works)
        die_with_dvc()
    within_thread_limit()
    _current_stage = name
    try:
        with one_sentence_errors(name):
            if inside_distributed_launch():
                yield
                return
            with _exclusive(name):
                yield
    finally:
        _current_stage = None


USER_ERRORS = (ValueError, OSError, RuntimeError, ArithmeticError)  # bad params, data, files, environment


@contextlib.contextmanager
def one_sentence_errors(name: str):
    """Bad params, data, files or environment end the process with `name: <the error's sentence>`, no traceback."""
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get("VDR_TRACEBACK"):
            raise
        message = str(error) if str(error).startswith(f"{name}:") else f"{name}: {error}"
        raise SystemExit(f"{message}\n(the full traceback: VDR_TRACEBACK=1)") from None


@contextlib.contextmanager
def _exclusive(name: str):
    """An exclusive lock for the stage, released by the kernel whenever the process ends."""
    folder = lock_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stage-{name}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SystemExit(
                f"stage {name} is already running here (pid {holder}, lock {path}); wait for it to finish, "
                f"or stop it (kill {holder}) and run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
