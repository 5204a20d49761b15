"""Run a training stage on several processes (GPUs) and nodes through torchrun, and tell the main process apart.

A stage calls `relaunch_distributed(params.<stage>, "<stage>")` once it knows its params. With num_processes > 1
on one node (num_nodes: 1) and outside a distributed launch, the same script and arguments run again as

    python -m torch.distributed.run --standalone --local-addr=127.0.0.1 --nproc_per_node=N stages/<stage>.py ARGS

and the stage exits with torchrun's exit code. With num_nodes > 1 every node runs the stage with the same
params.yaml and data, and each relaunches it with a static rendezvous at node 0:

    python -m torch.distributed.run --nnodes=M --node-rank=R --master-addr=HOST --master-port=PORT
        --rdzv-backend=static --nproc_per_node=N stages/<stage>.py ARGS

so that node R runs the global ranks R*N .. R*N+N-1. The first process of EVERY node (LOCAL_RANK 0) saves the
model and the DVCLive curves: after each DDP step every process holds the same weights, so every node writes the
same outputs, and the same `dvc repro` / `dvc exp run` runs on every node (DVC checks each stage's outputs on the
node that ran it). Checkpoints are refused across nodes (vdr/config/training.py Training): transformers writes their
weights on the global rank 0 only.

The nodes, this node's rank and node 0's address: `node_setup` (vdr/training/nodes.py).

Inside each worker torchrun sets RANK, LOCAL_RANK, WORLD_SIZE and TORCHELASTIC_RUN_ID; the Hugging Face trainer
then uses DistributedDataParallel: NCCL on GPUs, and on a machine without a GPU the CPU with the gloo backend
(ACCELERATE_USE_CPU, which the trainer reads).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from vdr.io.processes import die_with_parent, inside_distributed_launch
from vdr.training.nodes import Nodes, node_setup

if TYPE_CHECKING:
    from vdr.config.training import Training


# torchrun reads PET_<OPTION> as the default of --<option>; these would change the rendezvous the command line says
TORCHRUN_RENDEZVOUS_DEFAULTS = (
    "PET_NNODES",
    "PET_NODE_RANK",
    "PET_NPROC_PER_NODE",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "PET_RDZV_BACKEND",
    "PET_RDZV_ENDPOINT",
    "PET_RDZV_ID",
    "PET_RDZV_CONF",
    "PET_LOCAL_ADDR",
    "PET_STANDALONE",
)


def torchrun_command(num_processes: int, nodes: Nodes | None, argv: list[str]) -> list[str]:
    """The torchrun command line that reruns `argv` with `num_processes` workers on this node."""
    if nodes is None:  # one machine: the workers meet on the loopback, whatever the container's network
        rendezvous = ["--standalone", "--local-addr=127.0.0.1"]
    else:  # static: node 0 hosts the store, so it runs global rank 0
        rendezvous = [
            f"--nnodes={nodes.count}",
            f"--node-rank={nodes.rank}",
            f"--master-addr={nodes.master_addr}",
            f"--master-port={nodes.master_port}",
            "--rdzv-backend=static",
        ]
    return [sys.executable, "-m", "torch.distributed.run", *rendezvous, f"--nproc_per_node={num_processes}", *argv]


def relaunch_distributed(training: Training, section: str) -> None:
    """Re-run this script under torchrun and exit with its code, when the `Training` params section `training`
    (params.yaml `section`) asks for several processes or nodes and this is not yet a torchrun worker."""
    if inside_distributed_launch():
        return
    nodes = node_setup(training.num_nodes, training.rdzv_endpoint, section)
    if training.num_processes <= 1 and nodes is None:
        return
    import torch

    env = {name: value for name, value in os.environ.items() if name not in TORCHRUN_RENDEZVOUS_DEFAULTS}
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"
    command = torchrun_command(training.num_processes, nodes, sys.argv)
    if nodes is not None:
        print(
            f"node {nodes.rank} of {nodes.count} (rank from {nodes.rank_source}, node 0 at "
            f"{nodes.master_addr}:{nodes.master_port} from {nodes.master_source})"
            + ("" if nodes.rank == 0 else "; this node writes the same model and curves as node 0"),
            flush=True,
        )
    print("relaunching: " + " ".join(command), flush=True)
    with subprocess.Popen(command, env=env, preexec_fn=die_with_parent) as launcher:  # torchrun dies with the stage
        raise SystemExit(launcher.wait())
