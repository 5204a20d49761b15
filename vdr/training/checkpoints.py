"""Resume a killed training stage from its last checkpoint, and only when the checkpoint belongs to the same run.

A training stage saves Hugging Face Trainer checkpoints (model, optimizer, scheduler, RNG states, data
position) every `save_steps` into its checkpoints folder, a DVC output with `persist: true`, so a killed
stage keeps them and `dvc repro` does not delete them. Next to them lies `fingerprint.json`: the
stage's parameters and the hashes of its code and input files. On start:

  same fingerprint       resume from the newest complete checkpoint ("resuming from checkpoint-N")
  other fingerprint      delete every checkpoint and start afresh (they belong to another run)

A checkpoint is complete once it holds the marker file `complete`, written after the Trainer has
saved every file of it, together with a copy of the DVCLive history at that step; a checkpoint cut
short by a kill has no marker and is deleted. On resume the DVCLive history is restored from the
checkpoint, so the curves continue exactly where the checkpoint left them. After a successful run the
checkpoints are deleted (the finished model is the stage's output); `fingerprint.json` stays.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from vdr.io.files import write_json
from vdr.training.nodes import is_main_process

FINGERPRINT = "fingerprint.json"


COMPLETE = "complete"


LIVE_COPY = "dvclive"


CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def file_digest(path: Path) -> str:
    """sha256 of a file, or of every file under a folder (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def checkpoint_step(path: str | Path) -> int:
    return int(CHECKPOINT.match(Path(path).name).group(1))


class Checkpoints:
    """The checkpoints folder of one training stage.

    params: the parameter sections the run depends on (pydantic sections or plain values);
    inputs: the files and folders it reads (training data, the stage's own code);
    section: the params.yaml section of the stage's training settings, named when the run diverges.
    """

    def __init__(self, folder: Path, live_dir: Path, params: dict, inputs: list[Path], section: str | None = None):
        self.folder, self.live_dir, self.section = Path(folder), Path(live_dir), section
        plain = {
            name: value.model_dump(mode="json") if hasattr(value, "model_dump") else value
            for name, value in params.items()
        }
        self.fingerprint = {
            "params": plain,
            "inputs": {os.path.relpath(path): file_digest(Path(path)) for path in inputs},
        }
        self.resume = self._prepare()

    def _complete(self) -> list[Path]:
        found = [p for p in self.folder.glob("checkpoint-*") if CHECKPOINT.match(p.name) and (p / COMPLETE).exists()]
        return sorted(found, key=checkpoint_step)

    def _prepare(self) -> str | None:
        """The checkpoint to resume from (None: start afresh); on the main process, delete what cannot be resumed."""
        recorded = None
        if (self.folder / FINGERPRINT).exists():
            try:
                recorded = json.loads((self.folder / FINGERPRINT).read_text())
            except ValueError:  # cut short by a kill
                recorded = None
        same_run = recorded == self.fingerprint
        complete = self._complete() if same_run else []
        if is_main_process():
            for path in self.folder.glob("*"):
                if path.is_dir() and path not in complete[-1:]:
                    shutil.rmtree(path)  # another run's checkpoints, or ones cut short by a kill
            if not same_run:
                if recorded is not None:
                    print(f"{self.folder}: discarding checkpoints of a run with other parameters or inputs")
                write_json(self.folder / FINGERPRINT, self.fingerprint)
        if not complete:
            return None
        print(f"resuming from {complete[-1].name} ({self.folder})", flush=True)
        return str(complete[-1])

    def callbacks(self) -> list:
        """DVCLive curves that survive a resume, and the completion marker of every checkpoint (main process only)."""
        from transformers.integrations import DVCLiveCallback

        from dvclive import Live

        if self.resume is not None:  # the history as it was when the checkpoint was saved
            shutil.rmtree(self.live_dir, ignore_errors=True)
            if (Path(self.resume) / LIVE_COPY).exists():
                shutil.copytree(Path(self.resume) / LIVE_COPY, self.live_dir)
        live = Live(str(self.live_dir), save_dvc_exp=False, dvcyaml=None, resume=self.resume is not None)
        summary = self.live_dir / "metrics.json"
        if self.resume is not None and summary.exists():
            live.step = json.loads(summary.read_text())["step"] + 1  # the next step, also when the last one was step 0
        return [_node_callback(DVCLiveCallback)(live=live), _MarkComplete(self.live_dir)]

    def finish(self) -> None:
        """After a successful run: delete the checkpoints, keep the fingerprint (main process only)."""
        if is_main_process():
            for path in self.folder.glob("checkpoint-*"):
                shutil.rmtree(path)


def _node_callback(callback_class):
    """`callback_class` acting on the first process of every node, not only on the global rank 0 (transformers'
    DVCLiveCallback logs there only): on several nodes each node writes the same curves, as it writes the model.
    On one node the two are the same process."""

    def on_node(state):
        node_state = copy.copy(state)
        node_state.is_world_process_zero = state.is_local_process_zero
        return node_state

    class NodeCallback(callback_class):
        def setup(self, args, state, model):
            return super().setup(args, on_node(state), model)

        def on_log(self, args, state, control, **kwargs):
            return super().on_log(args, on_node(state), control, **kwargs)

        def on_save(self, args, state, control, **kwargs):
            return super().on_save(args, on_node(state), control, **kwargs)

        def on_train_end(self, args, state, control, **kwargs):
            return super().on_train_end(args, on_node(state), control, **kwargs)

    NodeCallback.__name__ = NodeCallback.__qualname__ = callback_class.__name__
    return NodeCallback


class _MarkComplete(TrainerCallback):
    """After the Trainer saved a checkpoint: copy the DVCLive history into it, then mark it complete."""

    def __init__(self, live_dir: Path):
        self.live_dir = live_dir

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.live_dir.exists():
            shutil.copytree(self.live_dir, checkpoint / LIVE_COPY, dirs_exist_ok=True)
        (checkpoint / COMPLETE).write_text(f"step {state.global_step}\n")
