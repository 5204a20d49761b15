"""The process pool an embedder encodes in over several devices (which devices: vdr/retrieval/devices.py).

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
import signal
import subprocess
import sys
import threading

from vdr.io.processes import die_with_parent
from vdr.retrieval.devices import bf16_autocast, cpu_threads_per_worker, pool_devices

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


@contextlib.contextmanager
def encoding_pool(model, setting, bf16: bool = False):
    """sentence-transformers' multi-process pool over the devices `setting` names (pass it as `pool=` to
    encode_query / encode_document), or None for one process (also for `setting` None); stopped when the block
    ends, whatever ends it. `bf16` (encode.bf16): one process encodes under bf16 autocast; autocast cannot reach
    a pool's worker processes, which encode in the model's own dtype (said when it happens). A device this machine
    lacks: FieldError naming `devices`."""
    devices = pool_devices(model, setting)
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
