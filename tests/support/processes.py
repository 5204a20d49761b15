"""Processes the tests start and watch.

alive(pid)        # whether a process runs (a zombie counts as ended)
SleepingPool()    # stands in for a model in vdr.retrieval.devices.encoding_pool: two idle worker processes
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not reaped, counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class SleepingPool:
    """A model whose pool is idle worker processes, one per device: sentence-transformers' pool layout and stop
    function. Importable by a child process's script, which is why it lives here and not in a test module."""

    def start_multi_process_pool(self, devices):
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=time.sleep, args=(300,), daemon=True) for _ in devices]
        for process in processes:
            process.start()
        return {"input": context.Queue(), "output": context.Queue(), "processes": processes}

    @staticmethod
    def stop_multi_process_pool(pool):
        from sentence_transformers import SentenceTransformer

        SentenceTransformer.stop_multi_process_pool(pool)
