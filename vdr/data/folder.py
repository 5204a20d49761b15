"""Your own documents' folder: the files found in it (PDFs and PNG/JPEG pages, recursively) and its fingerprint,
which the check stage records so that a changed folder reruns fetch. A folder that is not there, or holds no
document: FieldError naming `path` (vdr/errors.py; the stages name it fetch.path).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vdr.errors import FieldError

PDF_SUFFIXES = {".pdf"}


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


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


def folder_fingerprint(folder: Path, documents_only: bool = True) -> str:
    """A digest of every document's (every file's, with documents_only false) relative path, size and modification
    time: it changes when the folder does."""
    folder = _check_folder(folder)
    digest = hashlib.sha256()
    paths = scan_folder(folder) if documents_only else sorted(p for p in folder.rglob("*") if p.is_file())
    for path in paths:
        status = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()
