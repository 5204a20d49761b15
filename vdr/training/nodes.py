"""How many nodes, which one this is, and where node 0 is, for a training stage run by torchrun
(vdr/training/launch.py); `is_main_process` tells apart the process that saves.

Where the values come from (`node_setup`):
- the number of nodes: `<stage>.num_nodes` in params.yaml. It changes the global batch and so the result, so it is
  recorded with the experiment like num_processes; a scheduler's node count (below) is only checked against it.
- this node's rank: only the environment can say it (every node reads the same params.yaml).
- node 0's address: `<stage>.rdzv_endpoint` (host:port) when set, else the environment. Set in params, it is a
  deliberate choice for the experiment (a fixed head node without a scheduler); left null, the scheduler decides.
In the environment the first variable set wins: torchrun's own names (PET_*, which a Kubeflow PyTorchJob sets),
then the plain ones a job script sets on purpose, then Slurm's, which every Slurm job has. This node's rank is the
exception: every variable of it that is set must agree (NODE_RANK=0 exported to every node of a Slurm job, beside
SLURM_NODEID=1, would make two nodes rank 0), or node_setup stops naming both.

    node count   PET_NNODES, NNODES, SLURM_JOB_NUM_NODES, SLURM_NNODES
    node rank    PET_NODE_RANK, NODE_RANK, SLURM_NODEID
    node 0       PET_MASTER_ADDR, MASTER_ADDR; port PET_MASTER_PORT, MASTER_PORT (default 29500)

Slurm has no variable for node 0's address: the job script exports MASTER_ADDR (`scontrol show hostnames`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from vdr.io.processes import inside_distributed_launch

NODE_COUNT = ("PET_NNODES", "NNODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES")


NODE_RANK = ("PET_NODE_RANK", "NODE_RANK", "SLURM_NODEID")


MASTER_ADDR = ("PET_MASTER_ADDR", "MASTER_ADDR")


MASTER_PORT = ("PET_MASTER_PORT", "MASTER_PORT")


DEFAULT_PORT = 29500  # torchrun's


SLURM_MASTER = 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'


def is_main_process() -> bool:
    """True in a single-process run and in the first worker of each node (LOCAL_RANK 0): the one that saves the
    model and logs on its node (every node holds the same weights, so each writes the same outputs).

    Outside a torchrun worker RANK is not ours (a PyTorchJob sets it in every pod): the process is the main one."""
    return not inside_distributed_launch() or int(os.environ.get("LOCAL_RANK", "0")) == 0


@dataclass(frozen=True)
class Nodes:
    """Where this node stands in a run across `count` nodes, and what each value was read from."""

    count: int
    rank: int
    master_addr: str
    master_port: int
    rank_source: str
    master_source: str


def _every(environ: Mapping[str, str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, value) of each of `names` set (non-empty) in `environ`, in the order of `names`."""
    return [(name, environ[name].strip()) for name in names if environ.get(name, "").strip()]


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """(name, value) of the first of `names` set (non-empty) in `environ`."""
    found = _every(environ, names)
    return found[0] if found else None


def _whole_number(name: str, value: str, fix: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} is {value!r}, not a whole number: {fix}") from None
    if number < 0:
        raise ValueError(f"{name} is {value!r}, a negative number: {fix}")
    return number


def _host_port(endpoint: str, source: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")  # [::1]:29500
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{source} is {endpoint!r}: give node 0's address as host:port, the port in 1..65535")
    return host, int(port)


def node_setup(
    num_nodes: int, rdzv_endpoint: str | None, section: str, environ: Mapping[str, str] | None = None
) -> Nodes | None:
    """This node's place in a run over `num_nodes` nodes (params `<section>.num_nodes`), from the params and the
    environment (see the module docstring); None on one node. Raises ValueError naming the key or the variable."""
    environ = os.environ if environ is None else environ
    key = f"{section}.num_nodes"
    counted = _first(environ, NODE_COUNT)
    if num_nodes == 1:
        if counted is not None and counted[1] not in ("1", "1:1"):
            print(
                f"note: {counted[0]}={counted[1]} but {key} is 1, so this node trains alone; "
                f"to train across the nodes: dvc exp run -S +{key}=N (N nodes)",
                file=sys.stderr,
                flush=True,
            )
        return None

    # the scheduler's node count, if any, must agree with the params
    if counted is not None:
        name, value = counted
        if ":" in value:
            raise ValueError(
                f"{name} is {value!r}, an elastic range: the stage trains on a fixed number of nodes, {key} "
                f"({num_nodes}); run a PyTorchJob without elasticPolicy"
            )
        if _whole_number(name, value, f"set it to the number of nodes, {key} ({num_nodes})") != num_nodes:
            raise ValueError(
                f"{key} is {num_nodes} but {name} is {value}: run on {num_nodes} nodes, or set {key} to {value} "
                f"(dvc exp run -S +{key}={value})"
            )

    # this node's rank: from the environment only
    ranked = _first(environ, NODE_RANK)
    rank_fix = (
        f"this node's number from 0 to {num_nodes - 1}, 0 on the node at the rendezvous endpoint; under Slurm run "
        "the stage through srun, one task per node (it sets SLURM_NODEID); a PyTorchJob sets PET_NODE_RANK"
    )
    if ranked is None:
        older = " (in a PyTorchJob pod without PET_NODE_RANK: NODE_RANK=$RANK)" if "RANK" in environ else ""
        raise ValueError(
            f"{key} is {num_nodes}, but this node's rank is not in the environment: set NODE_RANK{older} to {rank_fix}"
        )
    rank_source, value = ranked
    rank = _whole_number(rank_source, value, f"set it to {rank_fix}")
    for other, other_value in _every(environ, NODE_RANK):
        if _whole_number(other, other_value, f"set it to {rank_fix}") != rank:
            raise ValueError(
                f"{rank_source} is {rank} but {other} is {other_value}: two sources of this node's rank disagree, "
                f"so nodes could share a rank; unset one of them or make them agree (this node's number from 0 to "
                f"{num_nodes - 1}, the same in both)"
            )
    if rank >= num_nodes:
        raise ValueError(
            f"{rank_source} is {rank}, outside 0..{num_nodes - 1} for {key} {num_nodes}: "
            f"run on {num_nodes} nodes, or set {key} to the number of nodes"
        )

    # node 0's address: the params, else the environment
    if rdzv_endpoint:
        master_source = f"{section}.rdzv_endpoint"
        master_addr, master_port = _host_port(rdzv_endpoint, master_source)
        return Nodes(num_nodes, rank, master_addr, master_port, rank_source, master_source)
    addressed = _first(environ, MASTER_ADDR)
    if addressed is None:
        raise ValueError(
            f"{key} is {num_nodes}, but node 0's address is neither in {section}.rdzv_endpoint (host:port) nor in "
            f"the environment: export MASTER_ADDR (node 0's host name) and MASTER_PORT (default {DEFAULT_PORT}) on "
            f"every node; under Slurm: {SLURM_MASTER}"
        )
    addr_source, master_addr = addressed
    ported = _first(environ, MASTER_PORT)
    master_port = DEFAULT_PORT
    if ported is not None:
        master_port = _whole_number(ported[0], ported[1], "set it to a free port on node 0")
        if not 1 <= master_port <= 65535:
            raise ValueError(f"{ported[0]} is {ported[1]}, outside 1..65535: set it to a free port on node 0")
    sources = addr_source + ("" if ported is None else f", {ported[0]}")
    return Nodes(num_nodes, rank, master_addr, master_port, rank_source, sources)
