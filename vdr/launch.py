"""Run a training stage on several processes (GPUs) through torchrun, and tell the main process apart.

A stage calls `relaunch_distributed(num_processes)` once it knows its params: with num_processes > 1
and outside a distributed launch, the same script and arguments run again as

    python -m torch.distributed.run --standalone --local-addr=127.0.0.1 --nproc_per_node=N stages/<stage>.py ARGS

and the stage exits with torchrun's exit code. Inside each worker torchrun sets RANK, LOCAL_RANK and
WORLD_SIZE; the Hugging Face trainer then uses DistributedDataParallel: NCCL on GPUs, and on a
machine without a GPU the CPU with the gloo backend (ACCELERATE_USE_CPU, which the trainer reads).
"""

from __future__ import annotations

import os
import subprocess
import sys

from vdr.stage import die_with_parent, inside_distributed_launch


def is_main_process() -> bool:
    """True in a single-process run and in the rank-0 worker: the one that saves models and logs."""
    return int(os.environ.get("RANK", "0")) == 0


def relaunch_distributed(num_processes: int) -> None:
    """Re-run this script under torchrun with `num_processes` workers and exit with its code.

    One machine: the workers meet on the loopback address, which works in a container whatever its
    network (the host name need not resolve).
    """
    if num_processes <= 1 or inside_distributed_launch():
        return
    import torch

    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--local-addr=127.0.0.1",
        f"--nproc_per_node={num_processes}",
        *sys.argv,
    ]
    print("relaunching: " + " ".join(command), flush=True)
    with subprocess.Popen(command, env=env, preexec_fn=die_with_parent) as launcher:  # torchrun dies with the stage
        raise SystemExit(launcher.wait())
