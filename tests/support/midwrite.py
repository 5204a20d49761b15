"""A stage run in a child process that stops in the middle of writing its output, so that a test can kill it there.

    python -m tests.support.midwrite render READY --params P --raw R --output O --metrics M
    python -m tests.support.midwrite publish READY --params P --embedder E ... --output O

It runs stages/<stage>.py's main() as the script does (inside stage_process), with one function wrapped: once part
of the output is in its temporary sibling (render: the training shards; publish: the model copied, before its card
is written), it creates the file READY and sleeps until it is killed.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from vdr.stage import parse_args, stage_process

PAUSE_AFTER = {"render": "write_shards", "publish": "set_truncate_dim"}  # called once part of the output is written


def pause_after(module, name: str, ready: Path) -> None:
    """Wrap module.name: its first call runs, then READY is created and the process sleeps."""
    real = getattr(module, name)

    def paused(*args, **kwargs):
        result = real(*args, **kwargs)
        ready.write_text("mid-write\n")
        time.sleep(600)
        return result

    setattr(module, name, paused)


def main(argv: list[str]) -> None:
    stage, ready, options = argv[0], Path(argv[1]), argv[2:]
    module = importlib.import_module(f"stages.{stage}")
    pause_after(module, PAUSE_AFTER[stage], ready)
    with stage_process(stage):
        module.main(parse_args(module.Paths, module.__doc__, options))


if __name__ == "__main__":
    main(sys.argv[1:])
