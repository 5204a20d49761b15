"""Which devices an embedder encodes on (params.yaml `encode.devices`, `vdr-eval --devices`), and the process pool.

    with encoding_pool(model, params.encode.devices) as pool:   # None: one process, on the model's own device
        embeddings = encode_documents(model, pages, batch_size, pool)

`auto`: every visible CUDA device when there are two or more, else the model's one device (one process: a
single GPU or the CPU). A list of two or more (`[cuda:0, cuda:1]`, `[cpu, cpu]`):
sentence-transformers' own multi-process encoding, one worker process per entry, each with its own copy of the
model; a list of one moves the model to that device. Inputs are cut into chunks in order and the workers' results
are put back in that order, so the embeddings are the single-process ones, row for row, to float tolerance
(a batch's padding depends on which inputs share it).

The pool starts once per stage (one `with`) and is stopped when the block ends, on an error too. While it runs,
SIGTERM (a killed `dvc`, vdr/io/processes.py) raises SystemExit in the main thread, so the workers are stopped rather
than left behind. A SIGKILL of the stage cannot be caught: a small watcher process, which the kernel signals when
the stage dies (Linux's parent-death signal), then kills the workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

from vdr.io.processes import die_with_parent

# kills the pids it is given when it gets SIGTERM, which the kernel sends when its parent (the stage) dies; it starts
# with SIGTERM blocked (_watcher_start), so a SIGTERM that comes while Python starts waits for the handler
WATCHER = (
    "import os, signal, sys, time\n"
    "def stop(*_):\n"
    "    for pid in sys.argv[1:]:\n"
    "        try:\n"
    "            os.kill(int(pid), signal.SIGKILL)\n"
    "        except ProcessLookupError:\n"
    "            pass\n"
    "    os._exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})\n"
    "while True:\n"
    "    time.sleep(3600)\n"
)


def resolve_devices(setting, key: str = "encode.devices") -> list[str]:
    """The devices `setting` (`auto` or a list, checked by vdr/config/params.py) names on this machine: [] for the
    model's own device (auto with fewer than two CUDA devices), else the list, each checked to exist here."""
    import torch

    if setting == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{index}" for index in range(count)] if count >= 2 else []
    devices = list(setting)
    for device in devices:
        kind, _, index = device.partition(":")
        if kind == "cpu":
            continue
        if kind == "mps":
            available = torch.backends.mps.is_available()
            count = 1 if available else 0
        else:
            backend = getattr(torch, kind, None)
            available = backend is not None and backend.is_available()
            count = backend.device_count() if available else 0
        if not available or (index and int(index) >= count):
            seen = f"{count} {kind} device(s) visible" if available else f"no {kind} device here"
            raise ValueError(f"{key}: {device} is not available ({seen}); list the devices of this machine, or auto")
    return devices


def pool_devices(model, setting, key: str = "encode.devices") -> list[str]:
    """The devices of a pool (two or more), or [] after moving the model to its one device when one is named
    (None: [], the model stays where it is)."""
    if setting is None:
        return []
    devices = resolve_devices(setting, key)
    if len(devices) == 1:
        model.to(devices[0])
        return []
    return devices


@contextlib.contextmanager
def bf16_autocast(model, enabled: bool):
    """The block runs the model under torch's bf16 autocast on its device (params.yaml encode.bf16): matrix
    products in bfloat16, the weights and the returned embeddings or scores float32. Off: unchanged."""
    if not enabled:
        yield
        return
    import torch

    with torch.autocast(device_type=model.device.type, dtype=torch.bfloat16):
        yield


@contextlib.contextmanager
def encoding_pool(model, setting, key: str = "encode.devices", bf16: bool = False):
    """sentence-transformers' multi-process pool over the devices `setting` names (pass it as `pool=` to
    encode_query / encode_document), or None for one process (also for `setting` None); stopped when the block
    ends, whatever ends it. `bf16` (encode.bf16): one process encodes under bf16 autocast; autocast cannot reach
    a pool's worker processes, which encode in the model's own dtype (said when it happens)."""
    devices = pool_devices(model, setting, key)
    if not devices:
        with bf16_autocast(model, bf16):
            yield None
        return
    if bf16:
        print(
            f"encode.bf16: the {len(devices)} worker processes encode in the model's own dtype (autocast stays in "
            "this process); for bfloat16 there, load the model in it (models.model_kwargs.dtype: bfloat16)"
        )
    with sigterm_raises():
        with cpu_threads_per_worker(devices):
            pool = model.start_multi_process_pool(devices)
        watcher = watch_workers([process.pid for process in pool["processes"]])
        try:
            yield pool
        finally:
            model.stop_multi_process_pool(pool)
            if watcher is not None:
                watcher.kill()
                watcher.wait()


def _watcher_start() -> None:
    """In the watcher, before it runs Python: SIGTERM held back until its handler is set, then the parent-death
    signal (if the stage already died, the SIGTERM it sends waits for the handler too)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    die_with_parent()


def watch_workers(pids: list[int]) -> subprocess.Popen | None:
    """A process that kills `pids` if this one dies without stopping them (SIGKILL); Linux only (None elsewhere)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None  # the parent-death signal follows the thread that started the watcher
    return subprocess.Popen(
        [sys.executable, "-c", WATCHER, *map(str, pids)],
        preexec_fn=_watcher_start,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM raises SystemExit(143) in the main thread for the block's duration (elsewhere: no change), so that
    `finally` clauses run: worker processes are stopped instead of outliving their parent."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def cpu_threads_per_worker(devices: list[str]):
    """CPU workers share the machine's cores rather than each taking all of them (OMP_NUM_THREADS while the pool
    starts; the workers read it once). Left alone when the environment sets it, or no worker runs on the CPU."""
    workers = devices.count("cpu")
    if not workers or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))
    try:
        yield
    finally:
        del os.environ["OMP_NUM_THREADS"]
