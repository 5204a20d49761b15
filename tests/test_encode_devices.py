"""Encoding across devices (vdr/retrieval/devices.py) and page embeddings streamed to disk (vdr/retrieval/encode.py
Spill).

Two CPU worker processes stand in for two GPUs: the same sentence-transformers pool, the same chunking and
reassembly. Each pool start costs a few seconds here (the workers import torch), so the tests share them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support.evalsets import MODEL, beir_set, vdr_eval
from tests.support.images import page_png
from tests.support.processes import SleepingPool, alive
from tests.support.repo import REPO
from vdr.cli import main as vdr_eval_main
from vdr.config.params import load_params
from vdr.config.section import ParamsError
from vdr.errors import fields_under
from vdr.models.loading import load_embedder
from vdr.retrieval.devices import resolve_devices
from vdr.retrieval.encode import Spill, encode_documents, encode_queries
from vdr.retrieval.pool import encoding_pool

TOPICS = ["mean", "median", "histogram", "csv file", "sort rows", "graph edges", "sparse matrix", "fourier transform"]
TEXTS = [
    f"{'Compute ' * (i % 5)}the {TOPICS[i % len(TOPICS)]} of the input {'values ' * (i % 7)}(variant {i})."
    for i in range(40)
]  # a few dozen texts of uneven lengths: workers sort their own chunks by length, the order must come back


@pytest.fixture(scope="module")
def model():
    embedder = load_embedder(MODEL)
    embedder.prompts = {"query": "query: ", "document": "passage: "}  # encode_query/encode_document must apply them
    return embedder


def test_two_cpu_processes_encode_like_one_and_stop_on_error(model, tmp_path):
    single_queries = encode_queries(model, TEXTS, batch_size=4)
    single_pages = encode_documents(model, TEXTS, batch_size=4)
    assert not np.allclose(single_queries, single_pages, atol=1e-3)  # the prompts differ, so do the embeddings

    with pytest.raises(RuntimeError, match="stop here"):
        with encoding_pool(model, ["cpu", "cpu"]) as pool:
            workers = [process.pid for process in pool["processes"]]
            assert len(workers) == 2 and all(alive(pid) for pid in workers)
            queries = encode_queries(model, TEXTS, batch_size=4, pool=pool)
            pages = encode_documents(model, TEXTS, batch_size=4, pool=pool)
            with Spill(0.01, tmp_path) as spill:  # 40 x 384 float32 = 60 KiB > 10 KiB: chunks into a memmap
                streamed = encode_documents(model, TEXTS, batch_size=4, pool=pool, spill=spill)
                assert isinstance(streamed, np.memmap) and Path(streamed.filename).parent.parent == tmp_path
                streamed = np.array(streamed)
            raise RuntimeError("stop here")
    assert not any(alive(pid) for pid in workers), "a pool worker outlived the error"
    assert not list(tmp_path.iterdir()), "the spill folder was left behind"

    np.testing.assert_allclose(queries, single_queries, atol=1e-5, rtol=0)
    np.testing.assert_allclose(pages, single_pages, atol=1e-5, rtol=0)
    np.testing.assert_allclose(streamed, single_pages, atol=1e-5, rtol=0)
    # the same order: every text is nearest to itself
    assert (np.argmax(pages @ single_pages.T, axis=1) == np.arange(len(TEXTS))).all()


def test_sigterm_stops_the_workers_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        with encoding_pool(SleepingPool(), ["cpu", "cpu"]) as pool:
            workers = [process.pid for process in pool["processes"]]
            os.kill(os.getpid(), signal.SIGTERM)  # what a killed `dvc` sends the stage (vdr/io/processes.py)
            time.sleep(5)  # never reached: the handler raises at once
    assert stopped.value.code == 128 + signal.SIGTERM
    assert not any(alive(pid) for pid in workers)
    assert signal.getsignal(signal.SIGTERM) is before


def test_devices_are_resolved_and_checked(monkeypatch):
    import torch

    assert resolve_devices(["cpu", "cpu"]) == ["cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert resolve_devices("auto") == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert resolve_devices(["cuda:3", "cuda:0"]) == ["cuda:3", "cuda:0"]
    with pytest.raises(ValueError, match=r"encode.devices: cuda:4 is not available \(4 cuda device\(s\) visible\)"):
        with fields_under("encode"):
            resolve_devices(["cuda:0", "cuda:4"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_devices("auto") == []  # one GPU: the model's own device, no pool
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert resolve_devices("auto") == []
    with pytest.raises(ValueError, match="^devices: cuda:0 is not available \\(no cuda device here\\)"):
        resolve_devices(["cuda:0"])


@pytest.mark.parametrize(
    "section, value, message",
    [
        ("encode", {"devices": "gpu"}, "encode.devices: must be auto, or a list of devices"),
        ("encode", {"devices": []}, "encode.devices: must be auto, or a list of devices"),
        ("encode", {"devices": ["cuda:0", "gpu1"]}, "encode.devices: 'gpu1' is not a device name"),
        ("encode", {"device": "auto"}, "encode.device: unknown key"),
        ("search", {"max_memory_mb": 0}, "search.max_memory_mb"),
        ("search", {"max_memory_mb": float("inf")}, "search.max_memory_mb: must be a finite number"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, section, value, message):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=message):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    "option, message",
    [
        (["--devices", "cpu,gpu"], "--devices: 'gpu' is not a device name"),
        (["--devices", ","], "--devices: must be auto, or a list of devices such as cuda:0,cuda:1 or cpu,cpu"),
        (["--max-memory-mb", "0"], "--max-memory-mb: must be a positive number"),
        (["--max-memory-mb", "nan"], "--max-memory-mb: must be a positive number"),
    ],
)
def test_vdr_eval_rejects_bad_devices_and_memory_bounds(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit):
        vdr_eval_main(["--model", MODEL, "--dataset", str(tmp_path), "--output", str(tmp_path / "m.json"), *option])
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    corpus = {"id": [f"p{i}" for i in range(len(TEXTS))], "text": TEXTS}
    queries = {"id": [f"q{i}" for i in range(len(TOPICS))], "text": [f"the {topic}" for topic in TOPICS]}
    qrels = {f"q{i}": {f"p{i}": 1, f"p{i + len(TOPICS)}": 1} for i in range(len(TOPICS))}
    return beir_set(tmp_path_factory.mktemp("set"), corpus, queries, qrels)


def flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Every number of a metrics JSON, by its path (dims/64/ndcg@10)."""
    numbers = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            numbers.update(flat(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)):
            numbers[f"{prefix}{key}"] = value
    return numbers


def scores(metrics: dict) -> dict:
    """flat(metrics) less what differs from run to run by design: the times, and the settings given."""
    kept = flat(metrics).items()
    return {k: v for k, v in kept if not k.startswith("settings/") and not k.endswith(("seconds", "evaluation_time"))}


def test_vdr_eval_on_two_processes_and_streamed_pages_gives_the_same_metrics(dataset, tmp_path):
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    common = ("--dims", "384,64", "--batch-size", "4")
    one = vdr_eval(dataset, tmp_path / "one", *common, "--devices", "cpu")
    # 40 pages x 384 float32 = 60 KiB above 10 KiB: 5 chunks of 8 pages into a memmap, searched block by block
    two = vdr_eval(dataset, tmp_path / "two", *common, "--devices", "cpu,cpu", "--max-memory-mb", "0.01")
    assert scores(two) == pytest.approx(scores(one), abs=1e-9) and "retrieve/dims/64/ndcg@10" in scores(one)
    assert sorted(path.name for path in (tmp_path / "two").iterdir()) == ["m.json"]  # no spill folder left


def test_embed_base_streams_corpus_npy_into_its_output(dataset, tmp_path, monkeypatch):
    from stages.embed_base import Paths, main

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"]["batch_size"] = 8  # 40 pages: 5 chunks of 8 when streamed
    # float32: under bf16 autocast an embedding moves by up to 1e-3 with the other inputs of its batch (padding),
    # which chunking changes; the same inputs give the same bits run to run either way
    params["encode"]["bf16"] = False
    outputs = {}
    for name, max_memory_mb in (("in_memory", 1024), ("streamed", 0.01)):
        params["search"]["max_memory_mb"] = max_memory_mb
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(params))
        main(Paths(params=tmp_path / f"{name}.yaml", dataset=dataset, output=tmp_path / name))
        outputs[name] = tmp_path / name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in_memory", "in_memory.yaml", "streamed", "streamed.yaml"]
    for file in ("queries.npy", "corpus.npy"):
        np.testing.assert_allclose(
            np.load(outputs["streamed"] / file), np.load(outputs["in_memory"] / file), atol=1e-6, rtol=0
        )
    info = [json.loads((outputs[name] / "info.json").read_text()) for name in outputs]
    assert info[0] == info[1]  # the memory bound is not an encoding setting: evaluate reads either


def test_mining_page_screenshots_streamed_keeps_the_same_negatives(tmp_path, tiny_vlms):
    """mine over page images (a tiny random Qwen3-VL): decoded and encoded a chunk at a time into a memmap, then
    searched block by block: the same negatives as everything in memory."""
    from types import SimpleNamespace

    from stages.mine import mine_image_negatives

    embedder, _ = tiny_vlms
    model = load_embedder(str(embedder))
    pages = [page_png(n) for n in range(16)]
    queries = [f"what does report {n} say?" for n in range(16)]
    mine = SimpleNamespace(
        batch_size=4, num_negatives=2, range_min=0, range_max=8, relative_margin=0.0, sampling_strategy="top", seed=1
    )
    in_memory = mine_image_negatives(queries, pages, model, mine, devices=None, spill=None)
    with Spill(0.0005, tmp_path / "spill") as spill:  # 16 pages x 64 dims x 4 bytes > 512 bytes: 4 chunks of 4
        streamed = mine_image_negatives(queries, pages, model, mine, devices=["cpu"], spill=spill)
        assert spill.folder is not None and [p.name for p in spill.folder.iterdir()] == ["pages.npy"]
    assert len(in_memory) > 0 and streamed.to_dict() == in_memory.to_dict()
    assert not list((tmp_path / "spill").iterdir())


KILLED_STAGE = """
import sys, time
from tests.support.processes import SleepingPool
from vdr.retrieval.pool import encoding_pool

if __name__ == "__main__":
    with encoding_pool(SleepingPool(), ["cpu", "cpu"]) as pool:
        open(sys.argv[1], "w").write(" ".join(str(p.pid) for p in pool["processes"]))
        time.sleep(300)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_stage_leaves_no_pool_worker(tmp_path, stage_env):
    """SIGKILL cannot be caught: the pool's watcher, signalled by the kernel when the stage dies, ends the workers."""
    (tmp_path / "stage.py").write_text(KILLED_STAGE)
    env = dict(stage_env, PYTHONPATH=str(REPO))  # SleepingPool from tests/support
    stage = subprocess.Popen([sys.executable, str(tmp_path / "stage.py"), str(tmp_path / "pids")], env=env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "pids").exists() or not (tmp_path / "pids").read_text():
        assert stage.poll() is None and time.monotonic() < deadline, "the pool did not start"
        time.sleep(0.2)
    workers = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    stage.kill()
    stage.wait()
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "a pool worker outlived the killed stage"


def test_bf16_encodes_under_autocast_in_one_process_and_says_a_pool_does_not(model, capsys):
    """encode.bf16: one process encodes under bf16 autocast (float32 embeddings, near the float32 ones, not equal);
    a pool's workers cannot, and the stage says so instead of claiming it."""
    import torch

    plain = encode_documents(model, TEXTS, batch_size=8)
    with encoding_pool(model, None, bf16=True) as pool:
        assert pool is None and torch.is_autocast_enabled("cpu")
        under_bf16 = encode_documents(model, TEXTS, batch_size=8)
    assert not torch.is_autocast_enabled("cpu")
    assert under_bf16.dtype == np.float32 and not np.array_equal(plain, under_bf16)
    assert (plain * under_bf16).sum(axis=1).min() > 0.99  # the same direction, to bf16's precision
    with encoding_pool(model, ["cpu", "cpu"], bf16=True) as pool:
        assert len(pool["processes"]) == 2
    assert "the 2 worker processes encode in the model's own dtype" in capsys.readouterr().out
