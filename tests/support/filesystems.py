"""Real file systems that refuse writes, for the tests of a full disk and a read-only data folder.

    with small_filesystem(tmp_path / "data", size_kb=4096) as kind:   # a tmpfs of 4 MiB mounted there (as root)
        ...write the previous output...
        fill(tmp_path / "data")                                        # the disk is now full: ENOSPC
    with read_only(tmp_path / "data") as kind:                         # remounted read-only (root), or chmod a-w
        ...

A tmpfs needs root (or CAP_SYS_ADMIN); where it cannot be mounted the test is skipped. Read-only without root is a
folder without write permission (EACCES); as root, whom permissions do not stop, the tmpfs is remounted read-only
(EROFS). `kind` says which one the test got.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_filesystem(folder: Path, size_kb: int = 4096):
    """A tmpfs of `size_kb` mounted on `folder` for the block; skip the test where none can be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    if not can_mount():
        pytest.skip("mounting a small tmpfs needs root")
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)]
    mounted = subprocess.run(command, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"no tmpfs could be mounted here: {mounted.stderr.decode().strip()}")
    try:
        yield "tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> None:
    """Write zeros into `folder` until its file system has no block left."""
    with open(folder / "filler", "wb") as handle:
        block = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
                handle.flush()


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` made read-only for the block: a remount of its tmpfs (root: small_filesystem must be mounted there),
    else its write permission taken away."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        try:
            yield "read-only mount (EROFS)"
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], capture_output=True)
        return
    mode = folder.stat().st_mode
    folder.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield "folder without write permission (EACCES)"
    finally:
        folder.chmod(mode)


@contextlib.contextmanager
def data_folder(folder: Path):
    """`folder` on a small tmpfs as root (so that read_only can remount it), or a plain folder otherwise."""
    if os.geteuid() == 0:
        with small_filesystem(folder) as kind:
            yield kind
    else:
        folder.mkdir(parents=True, exist_ok=True)
        yield "folder"
