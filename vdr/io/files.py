"""Files that are never half-written, and where caches live.

    with atomic_path("metrics/render.json") as tmp:   # a temporary sibling, renamed over the final path on success
        tmp.write_text(...)

A failed write (a full disk, a read-only or unwritable folder) is an OSError that names the output, not the temporary
file, and says what to do; the previous output stays as it was. A process killed mid-write (SIGKILL, or SIGTERM,
which ends a stage without running its cleanup) leaves the previous output too, and a hidden temporary sibling
(`.<name>.<host>.<pid>.<random>`): the next write of the same output removes the siblings of processes of this host
that have ended.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

WRITE_FAILURES = {  # errno -> what to do, said after the output's name
    errno.ENOSPC: "free space on that disk (df -h {parent}), then run again",
    errno.EDQUOT: "free space within your disk quota there, then run again",
    errno.EROFS: "the file system is mounted read-only: remount it writable, or work in a writable copy",
    errno.EACCES: "make {parent} writable for this user (ls -ld {parent}), or work in a writable copy",
    errno.EPERM: "make {parent} writable for this user (ls -ld {parent}), or work in a writable copy",
}


def user_cache_dir(kind: str) -> Path:
    """Where a cache of `kind` (ocr, generate) lives across runs and clones: $VDR_<KIND>_CACHE, else
    $XDG_CACHE_HOME/vdr/<kind>, else ~/.cache/vdr/<kind>."""
    if os.environ.get(f"VDR_{kind.upper()}_CACHE"):
        return Path(os.environ[f"VDR_{kind.upper()}_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vdr" / kind


@contextlib.contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary sibling path; on success it replaces `final` (the old one is moved aside first, so a folder
    is never half-deleted), on error it is removed and the old `final` stays."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(final)
        folder = Path(tempfile.mkdtemp(prefix=f".{final.name}.{_host()}.{os.getpid()}.", dir=final.parent))
    except OSError as error:
        raise _write_error(error, final) from error
    temporary = folder / final.name
    try:
        try:
            yield temporary
        except Exception as error:
            code = _failed_write(error, folder)
            if code is None:
                raise
            raise _write_error(error, final, code) from error
        folder_over = temporary.is_dir() and (final.exists() or final.is_symlink())
        if (final.is_dir() and not final.is_symlink()) or folder_over:
            os.replace(final, folder / f"previous-{final.name}")  # aside, then in: never half a folder
        os.replace(temporary, final)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_json(path: str | Path, data) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def remove_leftovers(final: Path) -> list[Path]:
    """Remove the temporary siblings of `final` left by processes of this host that have ended (killed mid-write);
    the removed ones."""
    removed = []
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(?P<host>.+)\.(?P<pid>\d+)\.[^.]+$")
    for sibling in final.parent.glob(f".{glob.escape(final.name)}.*"):
        match = pattern.match(sibling.name)
        if match and match["host"] == _host() and not _running(int(match["pid"])) and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _failed_write(error: BaseException, folder: Path) -> int | None:
    """The errno of a write into `folder` that the disk or its permissions refused, else None: an OSError about a
    file in `folder` (or about no file: pyarrow names none), the errors shutil.copytree gathers, or a library's
    own error whose text carries the system's message (safetensors)."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list):
        for _, destination, why in error.args[0]:
            code = _code_in_text(str(why))
            if code is not None and str(destination).startswith(str(folder)):
                return code
        return None
    if isinstance(error, OSError) and error.errno in WRITE_FAILURES:
        names = [name for name in (error.filename, error.filename2) if isinstance(name, str | bytes | os.PathLike)]
        inside = any(str(Path(os.fsdecode(name)).absolute()).startswith(str(folder.absolute())) for name in names)
        if inside or (not names and error.errno not in (errno.EACCES, errno.EPERM)):
            return error.errno
        return None
    if not isinstance(error, OSError):
        return _code_in_text(str(error), {errno.ENOSPC, errno.EDQUOT, errno.EROFS})
    return None


def _code_in_text(text: str, codes=WRITE_FAILURES) -> int | None:
    for code in codes:
        if os.strerror(code) in text or f"rrno {code}]" in text or f"code: {code}," in text:
            return code
    return None


class WriteError(OSError):
    """A write that the disk or its permissions refused. str(): `[Errno N] <output> could not be written: <reason>;
    <what to do>`; errno and strerror are the system's, for a caller that words its own sentence."""

    def __init__(self, code: int | None, reason: str, message: str):
        super().__init__(code, reason)
        self.message = message

    def __str__(self) -> str:
        return f"[Errno {self.errno}] {self.message}" if self.errno else self.message


def _write_error(error: BaseException, final: Path, code: int | None = None) -> WriteError:
    code = code if code is not None else getattr(error, "errno", None)
    reason = os.strerror(code) if code else str(error)
    fix = WRITE_FAILURES.get(code, "check that {parent} is a writable folder").format(parent=final.parent)
    return WriteError(
        code, reason, f"{final} could not be written: {reason}; {fix} (it is as it was before this write)"
    )
