"""Which devices an embedder encodes on (params.yaml `encode.devices`, `vdr-eval --devices`), and bf16 autocast.

`auto`: every visible CUDA device when there are two or more, else the model's one device (one process: a
single GPU or the CPU). A list names them, one worker process per entry (vdr/retrieval/pool.py); a device this
machine lacks stops the run before anything loads.
"""

from __future__ import annotations

import contextlib
import os

from vdr.config.precision import gpu_may_be_visible
from vdr.errors import FieldError


def resolve_devices(setting) -> list[str]:
    """The devices `setting` (`auto` or a list, checked by vdr/config/evaluation.py) names on this machine: [] for the
    model's own device (auto with fewer than two CUDA devices), else the list, each checked to exist here (else
    FieldError naming `devices`)."""
    if setting == "auto" and not gpu_may_be_visible():
        return []  # no GPU driver here: one process, and no torch import (the check stage runs on every repro)
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
            raise FieldError(
                "devices", f"{device} is not available ({seen}); list the devices of this machine, or auto"
            )
    return devices


def pool_devices(model, setting) -> list[str]:
    """The devices of a pool (two or more), or [] after moving the model to its one device when one is named
    (None: [], the model stays where it is)."""
    if setting is None:
        return []
    devices = resolve_devices(setting)
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
