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
"""

from __future__ import annotations

import hashlib
import json
import os
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
    folder = _check_folder(folder)
    paths = scan_folder(folder) if documents_only else [p for p in folder.rglob("*") if p.is_file()]
    names = sorted((path.relative_to(folder).as_posix(), path) for path in paths)
    cache = DigestCache(Path(cache_dir) if cache_dir else user_cache_dir("fingerprint"), folder)
    digest = hashlib.sha256()
    for name, path in names:
        digest.update(f"{name}\0{cache.digest(name, path)}\n".encode())
    cache.save()
    return digest.hexdigest()


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
