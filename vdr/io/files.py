"""Files that are never half-written, and where caches live.

    with atomic_path("metrics/render.json") as tmp:   # a temporary sibling, renamed over the final path on success
        tmp.write_text(...)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def user_cache_dir(kind: str) -> Path:
    """Where a cache of `kind` (ocr, generate) lives across runs and clones: $VDR_<KIND>_CACHE, else
    $XDG_CACHE_HOME/vdr/<kind>, else ~/.cache/vdr/<kind>."""
    if os.environ.get(f"VDR_{kind.upper()}_CACHE"):
        return Path(os.environ[f"VDR_{kind.upper()}_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vdr" / kind


@contextlib.contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary sibling path; on success it replaces `final` in one rename, on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent)) / final.name
    try:
        yield temporary
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(temporary, final)
    finally:
        shutil.rmtree(temporary.parent, ignore_errors=True)


def write_json(path: str | Path, data) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
