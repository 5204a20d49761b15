"""A stage process's life: it ends when `dvc` dies, and keeps torch's threads within the environment's limit.

When DVC started it (DVC sets DVC_STAGE) a stage ends with SIGTERM, on Linux, when `dvc` dies, so a killed `dvc`
leaves no stage running orphaned on the outputs the next `dvc repro` will write. `dvc` runs a stage's cmd through
`$SHELL -c`; bash replaces itself with the command, /bin/sh (dash) stays between them, so the stage watches
the nearest ancestor that is not a shell: the kernel's parent-death signal when that is its parent, else a
thread waiting on the ancestor's pidfd. `within_thread_limit` keeps torch's threads within an OMP_THREAD_LIMIT of
the environment.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import select
import signal
import sys
import tempfile
import threading
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def inside_distributed_launch() -> bool:
    """True in a worker that torchrun started (vdr/training/launch.py): the stage's own process holds the lock.

    torchrun sets TORCHELASTIC_RUN_ID and LOCAL_RANK in its workers; not WORLD_SIZE or RANK alone, which a
    Kubernetes PyTorchJob sets in every pod, around the stage's own process."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent process dies (Linux; elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


SHELLS = {"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "busybox"}


def _comm_and_parent(pid: int) -> tuple[str, int]:
    """A process's name and parent pid, from /proc/PID/stat (the name may hold spaces and parentheses)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    return name, int(stat[stat.rindex(")") + 2 :].split()[1])


def die_with_dvc() -> None:
    """SIGTERM when the process that ran our command dies: the parent, or above the shells between us (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    die_with_parent()  # also covers a shell in between being killed
    try:
        watched, shell = os.getppid(), None
        name, grandparent = _comm_and_parent(watched)
        while name in SHELLS and watched > 1:
            shell, watched = watched, grandparent
            name, grandparent = _comm_and_parent(watched)
    except (OSError, ValueError, IndexError):  # a process ended while we looked, or no /proc
        return
    if shell is None:
        return  # the parent itself is watched by the kernel
    if watched <= 1:  # dvc died before we looked; the shell was handed to init
        os.kill(os.getpid(), signal.SIGTERM)
        return
    try:
        handle = os.pidfd_open(watched)
    except (OSError, AttributeError):  # gone already, or a kernel older than 5.3
        return
    try:
        still_there = _comm_and_parent(shell)[1] == watched
    except (OSError, ValueError, IndexError):
        still_there = False
    if not still_there:  # it died between the walk and pidfd_open
        os.kill(os.getpid(), signal.SIGTERM)

    def wait_for_exit():
        select.select([handle], [], [])  # a pidfd becomes readable when its process ends
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_exit, name="die-with-dvc", daemon=True).start()


def lock_folder() -> Path:
    """.dvc/tmp in a DVC repository (the stage runs from its root); else a folder per working directory."""
    if Path(".dvc").is_dir():
        return Path(".dvc/tmp")
    return Path(tempfile.gettempdir()) / f"vdr-locks-{hashlib.sha256(os.getcwd().encode()).hexdigest()[:12]}"


def within_thread_limit() -> None:
    """torch's threads, at most the environment's OMP_THREAD_LIMIT. OpenMP starts no more threads than that limit,
    but torch splits its work for torch.get_num_threads() threads regardless: with bf16 autocast on the CPU, part of
    each result is then never computed, and training runs on garbage (NaN from the first step, measured with
    OMP_THREAD_LIMIT=1 and 2 torch threads). A stage that has not imported torch is left alone."""
    torch = sys.modules.get("torch")
    limit = os.environ.get("OMP_THREAD_LIMIT", "").strip()
    if torch is None or not limit.isdigit() or int(limit) < 1 or torch.get_num_threads() <= int(limit):
        return
    print(f"OMP_THREAD_LIMIT={limit} is set: torch uses {limit} thread(s) instead of {torch.get_num_threads()}")
    torch.set_num_threads(int(limit))
