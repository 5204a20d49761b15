"""Multi-process training: the real train_embedder stage with num_processes: 2 on the CPU (gloo backend).

The same code path runs one process per GPU on a GPU box: the stage relaunches itself under torchrun.
"""

import json

import pytest

from tests.support.training import run_training_stage

pytestmark = pytest.mark.e2e  # torchrun


def test_train_embedder_on_two_processes(embedder_on_two_processes):
    folder, output = embedder_on_two_processes  # shared with tests/test_multinode.py

    # Two workers trained (each reports its data), under torchrun
    assert "torch.distributed.run" in output
    assert output.count("training on 16 triplets") == 2, output[-3000:]

    # One model, written once by rank 0, with no temporary folders left beside it
    assert sorted(p.name for p in (folder / "models").iterdir() if "embedder" in p.name) == ["embedder"]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder / "models/embedder"), device="cpu")
    assert model.encode(["a query"]).shape == (1, 384)

    # One set of DVCLive metrics
    assert sorted(p.name for p in (folder / "dvclive").iterdir()) == ["train_embedder"]
    metrics = json.loads((folder / "dvclive/train_embedder/metrics.json").read_text())
    assert "train" in metrics or "loss" in metrics, metrics
    # 16 triplets, 4 per device and step, 2 devices: 2 optimizer steps (one process alone would take 4),
    # each logged once
    steps = (folder / "dvclive/train_embedder/plots/metrics/loss.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in steps] == ["0", "1"], steps


def test_train_reranker_on_two_processes(tmp_path):
    output = run_training_stage(
        tmp_path,
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
