"""Training across nodes: where a node's rank and node 0's address come from (Slurm, a Kubernetes PyTorchJob, plain
variables, params), and the real train_embedder stage on 2 "nodes" on the loopback, one CPU process each (gloo),
each in its own working directory as two machines would have: node 0 saves the model that 2 processes on one
node train.
"""

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.support.repo import REPO
from tests.support.training import EMBEDDER, training_environment, training_folder
from vdr.config.training import TrainEmbedder
from vdr.io.processes import inside_distributed_launch
from vdr.training.launch import torchrun_command
from vdr.training.nodes import DEFAULT_PORT, is_main_process, node_setup

SLURM = {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "SLURM_NNODES": "2", "SLURM_NODEID": "1"}
PYTORCHJOB = {
    "PET_NNODES": "2",
    "PET_NODE_RANK": "1",
    "PET_MASTER_ADDR": "job-master-0",
    "PET_MASTER_PORT": "23456",
    "MASTER_ADDR": "job-master-0",
    "MASTER_PORT": "23456",
    "WORLD_SIZE": "2",
    "RANK": "1",
}


# Where the values come from: nothing is launched


def test_one_node_needs_nothing_from_the_environment():
    assert node_setup(1, None, "train_embedder", {}) is None
    assert node_setup(1, "ignored:1", "train_embedder", {"NODE_RANK": "1"}) is None


def test_one_node_in_a_larger_allocation_trains_alone_and_says_so(capsys):
    assert node_setup(1, None, "train_embedder", SLURM) is None
    assert "SLURM_JOB_NUM_NODES=2 but train_embedder.num_nodes is 1" in capsys.readouterr().err


def test_slurm_gives_the_rank_and_the_job_script_node_0():
    nodes = node_setup(2, None, "train_embedder", {**SLURM, "MASTER_ADDR": "gpu-001", "MASTER_PORT": "29511"})
    assert (nodes.count, nodes.rank, nodes.master_addr, nodes.master_port) == (2, 1, "gpu-001", 29511)
    assert nodes.rank_source == "SLURM_NODEID"
    assert node_setup(2, None, "train_embedder", {**SLURM, "MASTER_ADDR": "gpu-001"}).master_port == DEFAULT_PORT


def test_a_pytorchjob_pod_gives_everything():
    nodes = node_setup(2, None, "train_reranker", PYTORCHJOB)
    assert (nodes.rank, nodes.master_addr, nodes.master_port) == (1, "job-master-0", 23456)
    assert (nodes.rank_source, nodes.master_source) == ("PET_NODE_RANK", "PET_MASTER_ADDR, PET_MASTER_PORT")


def test_plain_variables_and_their_precedence_over_slurm():
    plain = {"NNODES": "3", "NODE_RANK": "2", "MASTER_ADDR": "10.0.0.1"}
    assert node_setup(3, None, "train_embedder", plain).rank == 2
    # the rank is named after the first source set: PET_*, then NODE_RANK, then SLURM_NODEID; they agree
    assert node_setup(2, None, "s", {**SLURM, "NODE_RANK": "1", "MASTER_ADDR": "h"}).rank_source == "NODE_RANK"
    both = {**SLURM, "PET_NODE_RANK": "1", "NODE_RANK": " 1", "MASTER_ADDR": "h"}
    assert (node_setup(2, None, "s", both).rank, node_setup(2, None, "s", both).rank_source) == (1, "PET_NODE_RANK")


@pytest.mark.parametrize(
    "environ, message",
    [
        ({**SLURM, "NODE_RANK": "0"}, "NODE_RANK is 0 but SLURM_NODEID is 1: two sources of this node's rank"),
        ({"PET_NODE_RANK": "0", "NODE_RANK": "1"}, "PET_NODE_RANK is 0 but NODE_RANK is 1: two sources"),
    ],
    ids=["NODE_RANK-and-SLURM_NODEID", "PET_NODE_RANK-and-NODE_RANK"],
)
def test_sources_of_the_rank_that_disagree_stop_naming_both(environ, message):
    """Was SILENT: the first source won, so NODE_RANK=0 exported to every node of a Slurm job made two nodes rank 0."""
    with pytest.raises(ValueError) as error:
        node_setup(2, None, "train_embedder", {**environ, "MASTER_ADDR": "h"})
    assert message in str(error.value)
    assert node_setup(1, None, "train_embedder", environ) is None  # one node reads no rank


def test_params_endpoint_wins_over_the_environment():
    nodes = node_setup(2, "head.cluster:2222", "train_embedder", PYTORCHJOB)
    assert (nodes.master_addr, nodes.master_port, nodes.master_source) == (
        "head.cluster",
        2222,
        "train_embedder.rdzv_endpoint",
    )
    assert node_setup(2, "[fd00::1]:2222", "s", {"NODE_RANK": "0"}).master_addr == "fd00::1"


@pytest.mark.parametrize(
    "num_nodes, environ, message",
    [
        (2, {"MASTER_ADDR": "h"}, "train_embedder.num_nodes is 2, but this node's rank is not in the environment"),
        (2, {"MASTER_ADDR": "h", "RANK": "1", "WORLD_SIZE": "2"}, "NODE_RANK=$RANK"),
        (2, {"NODE_RANK": "0"}, "export MASTER_ADDR"),
        (2, {"NODE_RANK": "2", "MASTER_ADDR": "h"}, "NODE_RANK is 2, outside 0..1"),
        (2, {"NODE_RANK": "one", "MASTER_ADDR": "h"}, "NODE_RANK is 'one', not a whole number"),
        (2, {"NODE_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "99999"}, "MASTER_PORT is 99999, outside"),
        (4, {**SLURM, "MASTER_ADDR": "h"}, "train_embedder.num_nodes is 4 but SLURM_JOB_NUM_NODES is 2"),
        (2, {**PYTORCHJOB, "PET_NNODES": "1:4"}, "PET_NNODES is '1:4', an elastic range"),
    ],
)
def test_a_missing_or_wrong_value_names_the_key_or_variable_and_the_fix(num_nodes, environ, message):
    with pytest.raises(ValueError) as error:
        node_setup(num_nodes, None, "train_embedder", environ)
    assert message in str(error.value)


def test_the_endpoint_param_is_validated():
    fields = {"epochs": 1, "batch_size": 4, "learning_rate": 1e-5, "warmup_ratio": 0, "seed": 1}
    fields |= {"max_train_samples": None, "max_seq_length": None, "mini_batch_size": 4, "matryoshka_dims": [8]}
    assert TrainEmbedder(**fields).num_nodes == 1 and TrainEmbedder(**fields).rdzv_endpoint is None
    assert TrainEmbedder(**fields, rdzv_endpoint="gpu-001:29500").rdzv_endpoint == "gpu-001:29500"
    for bad in ("gpu-001", "http://gpu-001:29500", ":29500"):
        with pytest.raises(ValueError):
            TrainEmbedder(**fields, rdzv_endpoint=bad)
    with pytest.raises(ValueError):
        TrainEmbedder(**fields, num_nodes=0)
    with pytest.raises(ValueError, match=r"save_steps: checkpoints are not supported across nodes"):
        TrainEmbedder(**fields, num_nodes=2, save_steps=10)
    assert TrainEmbedder(**fields, num_nodes=1, save_steps=10).save_steps == 10


def test_the_torchrun_command():
    one = torchrun_command(4, None, ["stages/train_embedder.py"])
    assert one[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--local-addr=127.0.0.1",
        "--nproc_per_node=4",
        "stages/train_embedder.py",
    ]
    nodes = node_setup(2, None, "s", {**SLURM, "MASTER_ADDR": "gpu-001"})
    assert torchrun_command(4, nodes, ["stages/train_embedder.py"])[3:] == [
        "--nnodes=2",
        "--node-rank=1",
        "--master-addr=gpu-001",
        "--master-port=29500",
        "--rdzv-backend=static",
        "--nproc_per_node=4",
        "stages/train_embedder.py",
    ]


def test_a_pytorchjob_pod_is_not_a_torchrun_worker(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PYTORCHJOB.items():
        monkeypatch.setenv(name, value)
    assert not inside_distributed_launch()
    assert is_main_process()  # RANK 1 is the pod's, not a worker's: a single-process run saves its model
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert inside_distributed_launch() and is_main_process()  # the first worker of its node saves there
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_main_process()


# The real stage on two nodes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_stage(folder, env):
    return subprocess.Popen(
        [sys.executable, str(REPO / "stages/train_embedder.py")],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(processes: list) -> list[str]:
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=600)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-5000:]
    return outputs


def weights(folder):
    return load_file(str(folder / "models/embedder/model.safetensors"))


def loss_curve(folder):
    return (folder / "dvclive/train_embedder/plots/metrics/loss.tsv").read_text()


@pytest.mark.e2e  # torchrun
def test_two_nodes_train_the_model_of_two_processes_on_one_node(tmp_path, embedder_on_two_processes):
    env = training_environment()  # one thread per process, none of this machine's launch variables

    # The reference: 2 processes on one node (the run tests/test_ddp.py checks)
    one_node, _ = embedder_on_two_processes

    # 2 nodes, 1 process each, started together; node 0 at a free port on the loopback
    port = str(free_port())
    nodes = [
        training_folder(tmp_path / f"node{rank}", "train_embedder", EMBEDDER | {"num_nodes": 2}) for rank in (0, 1)
    ]
    outputs = finish(
        [
            start_stage(folder, dict(env, NNODES="2", NODE_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
            for rank, folder in enumerate(nodes)
        ]
    )
    for rank, output in enumerate(outputs):
        assert f"--nnodes=2 --node-rank={rank} --master-addr=127.0.0.1 --master-port={port}" in output
        assert output.count("training on 16 triplets") == 1, output[-3000:]
    assert "this node writes the same model and curves as node 0" in outputs[1]

    # Every node holds the model and the curves of 2 processes on one node, so `dvc repro` runs on every node
    reference = weights(one_node)
    for node in nodes:
        trained = weights(node)
        assert reference.keys() == trained.keys()
        for name in reference:
            assert torch.equal(reference[name], trained[name]), name  # bit for bit: the same ranks, data, reductions
        assert loss_curve(node) == loss_curve(one_node)
        assert [name for name in os.listdir(node / "models") if "embedder" in name] == ["embedder"]  # no temporaries
