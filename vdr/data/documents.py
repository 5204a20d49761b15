"""Your own documents: a folder of PDFs and page images, found, identified by content and split by document.

    folder = Path("~/manuals").expanduser()
    found = scan_folder(folder)                               # every *.pdf, *.png, *.jpg, *.jpeg, recursively
    documents, duplicates, bad = read_documents(found, folder, on_bad_document="skip", max_pages=40)
    train, held_out = split_documents(documents, eval_share=0.2, seed=42)

- A document's id is the start of the sha256 of its bytes, a page's id is `<document id>-p<page number>`: renaming
  or moving a file changes nothing, and a file found twice (same bytes) is one document.
- A PDF that cannot be read (encrypted, corrupt, no pages, a page tree listing pages the file does not hold) or an
  image that will not decode is named (its path relative to the folder) with why, then stops the stage
  (`on_bad_document: error`) or is skipped and counted (`skip`).
- The split is by document, seeded: no page of a held-out document is ever trained on.
- `folder_fingerprint` (vdr/data/folder.py) is what the check stage records so that DVC reruns fetch when the
  folder changes: every file's relative path and content hash (cached while its size, times and inode agree).
- `rasterise_pdf` renders every page with pypdfium2 at `dpi`, scaled down where that would exceed `max_pixels`
  (as image pages are), and keeps its text layer (the render stage); a failure names the file and the page.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import pypdfium2
from PIL import Image

from vdr.data.corpus import stable_rank
from vdr.data.folder import PDF_SUFFIXES
from vdr.io.images import normalise_image

ID_CHARS = 16  # hex digits of the sha256 kept as a document's id


@dataclass(frozen=True)
class Document:
    id: str
    name: str  # its path relative to the folder (the first, in sorted order, when the same bytes appear twice)
    kind: str  # pdf or image
    pages: int
    content: bytes


def count_pages(content: bytes, kind: str, max_pages: int | None = None) -> int:
    """How many pages a document has; ValueError saying why when it cannot be read. Every PDF page that will be
    rendered (the first max_pages; None: all) is loaded, so that a page tree claiming more pages than the file holds
    is found here, not in render."""
    if not content:
        raise ValueError("the file is empty")
    if kind == "image":
        try:
            with Image.open(io.BytesIO(content)) as image:
                image.verify()
        except Exception as error:
            raise ValueError(f"the image will not decode ({type(error).__name__}: {error})") from None
        return 1
    try:
        document = pypdfium2.PdfDocument(content)
    except pypdfium2.PdfiumError as error:
        if _opens_with_no_pages(content):  # pypdfium2 calls it a failed load, with a stale PDFium error code
            raise ValueError("the PDF has no pages (its page tree is empty or missing)") from None
        reason = str(error)
        if "password" in reason.lower():
            reason = "it is encrypted (password protected); decrypt it (e.g. `qpdf --decrypt`) or remove it"
        raise ValueError(f"the PDF cannot be opened: {reason}") from None
    try:
        pages = len(document)
        if pages == 0:
            raise ValueError("the PDF has no pages")
        for index in range(pages if max_pages is None else min(pages, max_pages)):
            try:
                document[index].close()
            except pypdfium2.PdfiumError as error:
                raise ValueError(
                    f"page {index + 1} of the {pages:,} its page tree lists cannot be loaded ({error}): the file is "
                    "damaged or truncated; repair it (e.g. `qpdf in.pdf out.pdf`) or remove it"
                ) from None
    finally:
        document.close()
    return pages


def _opens_with_no_pages(content: bytes) -> bool:
    """Whether PDFium opens the PDF and finds no page in it. pypdfium2 reports such a file as "Failed to load
    document" with PDFium's last error code, which no success resets: "Success", or the reason an earlier file
    failed (an encrypted one: "Incorrect password")."""
    handle = pypdfium2.raw.FPDF_LoadMemDocument64(content, len(content), None)
    if not handle:
        return False
    try:
        return pypdfium2.raw.FPDF_GetPageCount(handle) < 1
    finally:
        pypdfium2.raw.FPDF_CloseDocument(handle)


def read_documents(
    paths: list[Path], folder: Path, on_bad_document: str, max_pages: int | None = None
) -> tuple[list[Document], list, list]:
    """The documents, once per content; the duplicate files [(name, same as)]; the bad ones [(name, why)].

    With on_bad_document `error`, the first bad file stops with its name and the fix. The first `max_pages` pages of
    each PDF (None: all), those render will rasterise, must load."""
    documents: dict[str, Document] = {}
    duplicates, bad = [], []
    for path in paths:
        name = path.relative_to(folder).as_posix()
        content = path.read_bytes()
        document_id = hashlib.sha256(content).hexdigest()[:ID_CHARS]
        if document_id in documents:
            duplicates.append((name, documents[document_id].name))
            continue
        kind = "pdf" if path.suffix.lower() in PDF_SUFFIXES else "image"
        try:
            pages = count_pages(content, kind, max_pages)
        except ValueError as error:
            if on_bad_document == "error":
                raise ValueError(
                    f"{folder / name}: {error}; fix or remove the file, or set fetch.on_bad_document: skip to "
                    "skip such files and count them in metrics/fetch.json"
                ) from None
            bad.append((name, str(error)))
            continue
        documents[document_id] = Document(document_id, name, kind, pages, content)
    return list(documents.values()), duplicates, bad


def split_documents(documents: list[Document], eval_share: float, seed: int) -> tuple[list[Document], list[Document]]:
    """(train, held out): whole documents, in a seeded order, at least one on each side."""
    if len(documents) < 2:
        raise ValueError(
            f"fetch.path: {len(documents)} usable document(s); at least 2 are needed, one to train on and one to "
            "hold out for evaluation"
        )
    ordered = sorted(documents, key=lambda d: stable_rank(d.id, seed))
    held_out = min(max(1, round(eval_share * len(documents))), len(documents) - 1)
    return ordered[held_out:], ordered[:held_out]


def page_id(document_id: str, page_number: int) -> str:
    """The id of a document's page, numbered from 1."""
    return f"{document_id}-p{page_number}"


def render_scale(width_pt: float, height_pt: float, dpi: int, max_pixels: int | None) -> float:
    """The scale (pixels per PDF unit) that renders a page at `dpi`, or lower so that its bitmap (width and height
    rounded up, as pypdfium2 does) holds at most `max_pixels` pixels, its aspect kept."""
    scale = dpi / 72
    pixels = lambda s: max(1, math.ceil(width_pt * s)) * max(1, math.ceil(height_pt * s))  # noqa: E731
    while max_pixels is not None and pixels(scale) > max_pixels:
        scale *= min(0.999, (max_pixels / pixels(scale)) ** 0.5)
    return scale


def rasterise_pdf(
    content: bytes, dpi: int, max_pages: int | None = None, max_pixels: int | None = None
) -> list[tuple[bytes, str, int, int, bool]]:
    """Every page (or the first max_pages) as (PNG bytes, text layer, width, height, scaled down), rendered at `dpi`,
    or smaller where that would exceed `max_pixels` (scaled down: true). A page that cannot be loaded or rendered:
    ValueError naming its number."""
    document = pypdfium2.PdfDocument(content)
    pages = []
    try:
        count = len(document)
        for index in range(count if max_pages is None else min(count, max_pages)):
            try:
                page = document[index]
                text_page = page.get_textpage()
                text = text_page.get_text_range().replace("\r\n", "\n")
                scale = render_scale(page.get_width(), page.get_height(), dpi, max_pixels)
                image = page.render(scale=scale).to_pil().convert("RGB")
                text_page.close()
                page.close()
            except Exception as error:
                raise ValueError(f"page {index + 1} of {count:,}: {type(error).__name__}: {error}") from error
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=6)
            pages.append((buffer.getvalue(), text, image.width, image.height, scale < dpi / 72))
    finally:
        document.close()
    return pages


def page_rows(job) -> dict:
    """One document's pages as rows (id, document, page, image, text, width, height), for vdr.data.pages.map_pages;
    with how many were scaled down to max_pixels. A failure names the file (its path relative to fetch.path)."""
    document_id, name, kind, content, pages, dpi, max_pixels = job
    try:
        if kind == "pdf":
            rendered = rasterise_pdf(content, dpi, pages, max_pixels)
        else:
            with Image.open(io.BytesIO(content)) as image:
                scaled = image.width * image.height > max_pixels
            png, width, height = normalise_image(content, max_pixels)
            rendered = [(png, "", width, height, scaled)]  # no text layer: text models read it through OCR
    except Exception as error:  # the file names itself
        what = "could not be rasterised" if kind == "pdf" else "could not be decoded"
        raise RuntimeError(f"render: {name} (document '{document_id}') {what}: {error}") from error
    rows = [
        {"id": page_id(document_id, number), "document": document_id, "page": number}
        | {"image": png, "text": text, "width": width, "height": height}
        for number, (png, text, width, height, _) in enumerate(rendered, start=1)
    ]
    return {"id": document_id, "rows": rows, "scaled_down": sum(page[4] for page in rendered)}
