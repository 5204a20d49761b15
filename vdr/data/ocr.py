"""OCR of page images with Tesseract, for text-only models given image-only pages (see vdr/data/evalset.py).

A text-only model given an image-only corpus (screenshots, or a `text` column that is empty) reads the
pages through Tesseract (`pytesseract`, Debian package `tesseract-ocr`). Each tesseract process uses
one thread (OMP_THREAD_LIMIT=1); `workers` of them run side by side. Every result is cached on disk
under the sha256 of the image bytes (in a folder per tesseract version and language), so a page is
read once per machine: the second evaluation of the same corpus runs no tesseract at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from vdr.io.files import atomic_path, user_cache_dir
from vdr.io.images import decode_image, undecodable
from vdr.stage import progress_label

LANGUAGE = "eng"


INSTALL_HINT = (
    "install it with `apt-get install tesseract-ocr` (Debian/Ubuntu; `brew install tesseract` on macOS) "
    "and the Python wrapper with `pip install pytesseract` (pinned in requirements.lock)"
)


class TesseractMissingError(RuntimeError):
    pass


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def tesseract_version() -> str:
    """The installed tesseract's version; a clear error that says how to install it when it is missing."""
    try:
        import pytesseract
    except ImportError:
        raise TesseractMissingError(
            f"OCR of page images needs pytesseract and the tesseract binary: {INSTALL_HINT}"
        ) from None
    command = pytesseract.pytesseract.tesseract_cmd
    if shutil.which(command) is None:
        raise TesseractMissingError(
            f"OCR of page images needs the tesseract binary, and '{command}' was not found: {INSTALL_HINT}"
        )
    try:
        return str(pytesseract.get_tesseract_version())
    except pytesseract.TesseractNotFoundError:
        raise TesseractMissingError(
            f"OCR of page images needs the tesseract binary, and '{command}' does not run: {INSTALL_HINT}"
        ) from None


@contextlib.contextmanager
def one_thread_per_tesseract():
    """tesseract reads OMP_THREAD_LIMIT from the environment it inherits; set it while OCR runs, then restore."""
    before = os.environ.get("OMP_THREAD_LIMIT")
    os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["OMP_THREAD_LIMIT"]
        else:
            os.environ["OMP_THREAD_LIMIT"] = before


def _read(job: tuple[str, bytes]) -> str:
    import pytesseract

    name, image_bytes = job
    try:
        image = decode_image(image_bytes)
    except Exception as error:  # bytes that are no image, or too large an image: the page and the fix
        raise RuntimeError(f"OCR of {name} failed: {undecodable(error)}") from None
    try:
        return pytesseract.image_to_string(image, lang=LANGUAGE).strip()
    except Exception as error:  # a page that tesseract cannot read names itself
        raise RuntimeError(f"OCR of {name} failed: {error}") from error


def ocr_images(
    images: list[bytes],
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    names: list[str] | None = None,
) -> list[str]:
    """The text of each page image (PNG/JPEG bytes), from the cache or from tesseract; same order as `images`.

    `names` (e.g. "corpus.parquet, id 'p1'") only label errors; by default "image 0", "image 1", ...
    """
    version = tesseract_version()
    folder = Path(cache_dir or user_cache_dir("ocr")) / f"tesseract-{version}-{LANGUAGE}"
    keys = [hashlib.sha256(data).hexdigest() for data in images]
    path = lambda key: folder / key[:2] / f"{key}.txt"  # noqa: E731
    missing = {
        key: (name, data)
        for key, name, data in zip(keys, names or [f"image {i}" for i in range(len(images))], images)
        if not path(key).exists()
    }
    if missing:
        print(
            f"OCR: {len(missing)} of {len(images)} pages with tesseract "
            f"({len(images) - len(missing)} cached in {folder})"
        )
        with one_thread_per_tesseract(), ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            texts = pool.map(_read, missing.values())
            label = progress_label(f"OCR of {len(missing):,} pages (tesseract {version})")
            for key, text in tqdm(zip(missing, texts), total=len(missing), desc=label, unit="page"):
                with atomic_path(path(key)) as temporary:
                    temporary.write_text(text)
    return [path(key).read_text() for key in keys]
