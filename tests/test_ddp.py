"""Multi-process training: the real train_embedder stage with num_processes: 2 on the CPU (gloo backend).

The same code path runs one process per GPU on a GPU box: the stage relaunches itself under torchrun.
"""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.ddp

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


def tiny_mined(folder):
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


def run_stage_on_two_processes(tmp_path, stage_env, stage: str, overrides: dict) -> str:
    """Run stages/<stage>.py on tiny mined data with params.<stage> updated by `overrides`; its output."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[stage].update(overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tiny_mined(tmp_path / ("data/mined_reranker" if stage == "train_reranker" else "data/mined"))
    env = dict(stage_env, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, str(REPO / f"stages/{stage}.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def test_train_embedder_on_two_processes(tmp_path, stage_env):
    output = run_stage_on_two_processes(
        tmp_path,
        stage_env,
        "train_embedder",
        {
            "max_train_samples": 16,
            "max_seq_length": 32,
            "batch_size": 4,
            "mini_batch_size": 4,
            "matryoshka_dims": [384, 64],
            "num_processes": 2,
            "gather_across_devices": True,
        },
    )

    # Two workers trained (each reports its data), under torchrun
    assert "torch.distributed.run" in output
    assert output.count("training on 16 triplets") == 2, output[-3000:]

    # One model, written once by rank 0, with no temporary folders left beside it
    assert sorted(p.name for p in (tmp_path / "models").iterdir() if "embedder" in p.name) == ["embedder"]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tmp_path / "models/embedder"), device="cpu")
    assert model.encode(["a query"]).shape == (1, 384)

    # One set of DVCLive metrics
    assert sorted(p.name for p in (tmp_path / "dvclive").iterdir()) == ["train_embedder"]
    metrics = json.loads((tmp_path / "dvclive/train_embedder/metrics.json").read_text())
    assert "train" in metrics or "loss" in metrics, metrics
    # 16 triplets, 4 per device and step, 2 devices: 2 optimizer steps (one process alone would take 4),
    # each logged once
    steps = (tmp_path / "dvclive/train_embedder/plots/metrics/loss.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in steps] == ["0", "1"], steps


def test_train_reranker_on_two_processes(tmp_path, stage_env):
    output = run_stage_on_two_processes(
        tmp_path,
        stage_env,
        "train_reranker",
        {
            "max_train_queries": 16,
            "negatives_per_positive": 1,
            "eval_queries": 0,
            "epochs": 1,
            "max_length": 48,
            "batch_size": 4,
            "num_processes": 2,
        },
    )
    assert output.count("training on 32 (query, page, label) pairs") == 2, output[-3000:]

    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tmp_path / "models/reranker"), device="cpu")
    assert len(model.predict([("a query", "a page")])) == 1
    # 32 pairs, 4 per device and step, 2 devices: 4 optimizer steps, each logged once by the main process
    steps = (tmp_path / "dvclive/train_reranker/plots/metrics/loss.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in steps] == ["0", "1", "2", "3"], steps
