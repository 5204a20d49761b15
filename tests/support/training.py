"""A training stage run on its own, on mined triplets written here instead of by the mine stages.

tiny_mined(folder / "data/mined")                                   # 16 (query, positive, negative_1) text rows
output = run_training_stage(folder, "train_embedder", EMBEDDER | {"num_processes": 2})   # under torchrun
"""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from tests.support.repo import REPO, stage_environment

TOPICS = [
    "sorting a list",
    "reading a csv file",
    "matrix inverse",
    "shortest path in a graph",
    "fourier transform",
    "random sampling",
    "string formatting",
    "date parsing",
    "linear regression",
    "histogram binning",
    "file compression",
    "set intersection",
    "regular expressions",
    "json encoding",
    "prime numbers",
    "image resizing",
]

# train_embedder on the 16 triplets of tiny_mined in seconds: 4 per device and step
EMBEDDER = {
    "max_train_samples": 16,
    "max_seq_length": 32,
    "batch_size": 4,
    "mini_batch_size": 4,
    "matryoshka_dims": [384, 64],
    "gather_across_devices": True,
}
# where torchrun, Slurm or a Kubernetes PyTorchJob would tell a stage which node or worker it is
LAUNCH_VARIABLES = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")
LAUNCH_PREFIXES = ("SLURM_", "PET_", "TORCHELASTIC_")


def tiny_mined(folder):
    """folder/train.parquet: one triplet per topic; each negative is the next topic's page."""
    rows = [
        {
            "query": f"how do I do {topic}?",
            "positive": f"A page that explains {topic} step by step, with examples.",
            "negative_1": f"A page about {TOPICS[(i + 1) % len(TOPICS)]} that does not answer the question.",
        }
        for i, topic in enumerate(TOPICS)
    ]
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "train.parquet")


def training_environment(env: dict | None = None) -> dict:
    """`env` (default: stage_environment()) for a training stage on the CPU, one thread per process, with no launch
    variables of the machine the tests run on: a test sets the ones it means."""
    env = dict(env or stage_environment(), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return {
        name: value
        for name, value in env.items()
        if name not in LAUNCH_VARIABLES and not name.startswith(LAUNCH_PREFIXES)
    }


def training_folder(folder, stage: str, overrides: dict):
    """`folder` as a checkout of this project as far as `stage` needs it: params.yaml with params.<stage> updated by
    `overrides`, and tiny_mined triplets where the stage reads them."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[stage].update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tiny_mined(folder / ("data/mined_reranker" if stage == "train_reranker" else "data/mined"))
    return folder


def run_training_stage(folder, stage: str, overrides: dict, env: dict | None = None) -> str:
    """Run stages/<stage>.py in training_folder(folder, stage, overrides); its output (the test fails with the end of
    it if the stage fails)."""
    training_folder(folder, stage, overrides)
    result = subprocess.run(
        [sys.executable, str(REPO / f"stages/{stage}.py")],
        cwd=folder,
        env=training_environment(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output
