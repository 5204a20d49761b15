"""Your own documents' folder: the files found in it (PDFs and PNG/JPEG pages, recursively) and its fingerprint,
which the check stage records so that a changed folder reruns fetch. A folder that is not there, or holds no
document: FieldError naming `path` (vdr/errors.py; the stages name it fetch.path).

The fingerprint is a digest of every file's relative path and the sha256 of its content: content decides, so a
file replaced by other bytes of the same size with its modification time kept (`cp -p`, `rsync -t`, a restore
from a backup) changes it, and a file only touched does not. Hashing is paid once per file: each file's sha256 is
remembered in a private cache ($VDR_FINGERPRINT_CACHE, else ~/.cache/vdr/fingerprint; one small JSON file per
folder, outside every DVC output) under its (size, mtime_ns, ctime_ns, inode, device), and reused while all five
agree. The change time is the guard: the kernel sets it to the current time on every write and on every change
of the modification time, and no call sets it back, so restoring the modification time after a write still
changes it. A file whose change time is within RACY_NS of its reading is not remembered (a write in the same clock
tick would leave the five equal). A missing, unreadable or corrupt cache only means hashing again.

The folder can change while a run is in progress (a copy into it still running). `SteadyFolder` holds fetch to the
state the check stage recorded, and to the same state while fetch reads it: otherwise the data written and the
fingerprint DVC records would describe two states of the folder, and a later run could take the one for the other.
A relative path is read from the repository root; under `dvc exp run --temp` or `--queue` that root is DVC's
temporary copy of the repository, which holds only what git tracks (`require_in_experiment_copy` names what is
missing there).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vdr.errors import FieldError
from vdr.io.files import user_cache_dir

PDF_SUFFIXES = {".pdf"}


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


CACHE_VERSION = 1


RACY_NS = 2_000_000_000  # a file changed this recently is hashed again next time (coarse file-system clocks)


def _check_folder(folder: Path) -> Path:
    folder = Path(folder).expanduser()
    if not str(folder).strip() or str(folder) == ".":
        raise FieldError("path", "set the folder of your documents, e.g. `dvc exp run -S fetch.path=/path/to/pdfs`")
    if not folder.is_dir():
        raise FieldError("path", f"{folder} is not a folder; give the folder that holds your PDFs and page images")
    return folder


def scan_folder(folder: Path) -> list[Path]:
    """Every PDF and PNG/JPEG under `folder` (hidden files and folders left out), in sorted order."""
    folder = _check_folder(folder)
    found = [
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in PDF_SUFFIXES | IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    if not found:
        raise FieldError("path", f"{folder} holds no *.pdf, *.png, *.jpg or *.jpeg file (searched recursively)")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def folder_fingerprint(folder: Path, documents_only: bool = True, cache_dir: Path | None = None) -> str:
    """A digest of every document's (every file's, with documents_only false) relative path and content: it changes
    when the folder does. Each file's content hash comes from the cache in `cache_dir` (default
    user_cache_dir("fingerprint")) while the file's size, times, inode and device are those it was hashed with."""
    return fingerprint_of(folder_files(folder, documents_only, cache_dir))


def folder_files(folder: Path, documents_only: bool = True, cache_dir: Path | None = None) -> dict[str, str]:
    """{relative path: sha256 of its content} of every document (every file, with documents_only false)."""
    folder = _check_folder(folder)
    paths = scan_folder(folder) if documents_only else [p for p in folder.rglob("*") if p.is_file()]
    cache = DigestCache(Path(cache_dir) if cache_dir else user_cache_dir("fingerprint"), folder)
    files = {
        name: cache.digest(name, path) for name, path in sorted((p.relative_to(folder).as_posix(), p) for p in paths)
    }
    cache.save()
    return files


def fingerprint_of(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def changes(before: dict[str, str], after: dict[str, str], shown: int = 3) -> str:
    """What differs between two states of a folder: "rewritten: a.pdf; added: b.pdf and 2 more; removed: ..."."""
    kinds = {
        "rewritten": [name for name in before if name in after and before[name] != after[name]],
        "added": [name for name in after if name not in before],
        "removed": [name for name in before if name not in after],
    }
    return "; ".join(f"{kind}: {listed(names, shown)}" for kind, names in kinds.items() if names)


def listed(names: list[str], shown: int = 3) -> str:
    """The first `shown` names, and how many more: "a.pdf, b.pdf, c.pdf and 2 more"."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


SETTLE = "let the folder settle (a copy into it still running?), then run dvc repro again"


class SteadyFolder:
    """The folder fetch reads, held to the state the check stage recorded and to the same state while it is read,
    so that the data written and the fingerprint DVC records for the run describe one state of the folder:

        steady = SteadyFolder(folder, documents_only, recorded=fingerprint_from_check_json)   # FieldError if changed
        ...read the folder...
        steady.require_unchanged()                                                           # FieldError if changed

    Errors name the field `path` (the stages: fetch.path)."""

    def __init__(self, folder: Path, documents_only: bool, recorded: str | None, cache_dir: Path | None = None):
        self.folder, self.documents_only, self.cache_dir = Path(folder).expanduser(), documents_only, cache_dir
        self.files = folder_files(self.folder, documents_only, cache_dir)
        if recorded is not None and fingerprint_of(self.files) != recorded:
            raise FieldError(
                "path",
                f"{self.folder} changed after the check stage fingerprinted it (a file added, removed or rewritten "
                f"since; now {len(self.files)} files): fetch stops rather than read a state of the folder that this "
                f"run would not record; {SETTLE}",
            )

    def require_unchanged(self) -> None:
        after = folder_files(self.folder, self.documents_only, self.cache_dir)
        if after != self.files:
            raise FieldError(
                "path",
                f"{self.folder} changed while fetch read it ({changes(self.files, after)}); nothing was "
                f"written; {SETTLE}",
            )


FOLDER_SOURCES = {"documents": True, "local": False}  # fetch.source that reads fetch.path -> only documents count


def experiment_workspace() -> Path | None:
    """The workspace a queued or temporary experiment was started from, when this process runs in DVC's copy of the
    repository (`dvc exp run --temp` and `--queue` run the stages in .dvc/tmp/exps/<tmp>, with DVC_ROOT set to the
    workspace); None elsewhere (`dvc repro`, `dvc exp run` in the workspace, a stage run by hand)."""
    root = os.environ.get("DVC_ROOT")
    if not root or Path(root).resolve() == Path.cwd().resolve():
        return None
    return Path(root).resolve()


def require_in_experiment_copy(path: str, documents_only: bool = True) -> None:
    """A relative fetch.path is read from the repository root, which in a queued or temporary experiment is DVC's
    copy of it: it holds what git tracks, not a folder beside the repository nor files git ignores or does not
    track. Stop, naming the path and the fix, when the copy lacks the folder, or lacks files of it that the workspace
    holds; FieldError naming `path`."""
    folder, workspace = Path(path).expanduser(), experiment_workspace()
    if workspace is None or folder.is_absolute():
        return
    meant = (workspace / folder).resolve()
    fix = f"give an absolute path, e.g. -S fetch.path={meant}" if meant.is_dir() else "give an absolute path"
    where = (
        f"'{path}' is a relative path, and this run works in DVC's temporary copy of the repository ({Path.cwd()}, "
        "made by dvc exp run --temp or --queue, holding only what git tracks)"
    )
    if not folder.is_dir():
        raise FieldError("path", f"{where}, where it names {folder.resolve()}, which does not exist; {fix}")
    left_out = [name for name in untracked_files(workspace, meant, documents_only) if not (folder / name).exists()]
    if left_out:
        raise FieldError(
            "path",
            f"{where}, which lacks {len(left_out)} file(s) of {meant} that git does not track ({listed(left_out)}), "
            f"so this run would read fewer documents than the folder holds; {fix}, or copy each in: dvc exp run "
            + " ".join(f"-C {Path(path, name).as_posix()}" for name in left_out[:3])
            + (" ..." if len(left_out) > 3 else ""),
        )


def untracked_files(workspace: Path, folder: Path, documents_only: bool) -> list[str]:
    """The files under `folder` (inside the git workspace) that git does not track, relative to `folder`, as
    scan_folder counts them; [] when git cannot tell."""
    try:
        inside = folder.relative_to(workspace)
        listed = subprocess.run(
            ["git", "-C", str(workspace), "ls-files", "--others", "-z", "--", str(inside) or "."],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (ValueError, OSError, subprocess.SubprocessError):
        return []
    names = [Path(os.fsdecode(item)).relative_to(inside).as_posix() for item in listed.split(b"\0") if item]
    return sorted(
        name
        for name in names
        if not any(part.startswith(".") for part in Path(name).parts)
        and (not documents_only or Path(name).suffix.lower() in PDF_SUFFIXES | IMAGE_SUFFIXES)
    )


def file_sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


class DigestCache:
    """Content hashes of one folder's files, reused while (size, mtime_ns, ctime_ns, inode, device) agree."""

    def __init__(self, directory: Path, folder: Path):
        self.folder = str(folder.resolve())
        self.path = directory / f"{hashlib.sha256(self.folder.encode()).hexdigest()[:32]}.json"
        self.known = self._load()
        self.seen: dict[str, list] = {}
        self.hashed = 0

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != CACHE_VERSION or data.get("folder") != self.folder:
                return {}
            return {
                name: entry
                for name, entry in data["files"].items()
                if isinstance(entry, list)
                and len(entry) == 6
                and all(isinstance(value, int) for value in entry[:5])
                and isinstance(entry[5], str)
                and len(entry[5]) == 64
            }
        except (OSError, ValueError, TypeError, AttributeError, KeyError):
            return {}  # missing or corrupt: every file is hashed again

    def digest(self, name: str, path: Path) -> str:
        status = path.stat()
        key = [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev]
        entry = self.known.get(name)
        if entry is not None and entry[:5] == key:
            self.seen[name] = entry
            return entry[5]
        content = file_sha256(path)
        self.hashed += 1
        if status.st_ctime_ns < time.time_ns() - RACY_NS:  # changed long enough ago: a later change moves ctime
            self.seen[name] = [*key, content]
        return content

    def save(self) -> None:
        """Keep the entries of the files seen this time (none of a file since removed); nothing to write: no write."""
        if self.seen == self.known:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(handle, "w") as file:
                    json.dump({"version": CACHE_VERSION, "folder": self.folder, "files": self.seen}, file)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            print(
                f"note: the fingerprint cache {self.path} could not be written ({error}); every file is hashed again "
                "next time (set VDR_FINGERPRINT_CACHE to a writable folder)",
                file=sys.stderr,
            )
