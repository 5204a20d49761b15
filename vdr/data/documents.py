"""Your own documents: a folder of PDFs and page images, found, identified by content and split by document.

    found = scan_folder(Path("~/manuals").expanduser())     # every *.pdf, *.png, *.jpg, *.jpeg, recursively
    documents, duplicates, bad = read_documents(found, on_bad_document="skip")
    train, held_out = split_documents(documents, eval_share=0.2, seed=42)

- A document's id is the start of the sha256 of its bytes, a page's id is `<document id>-p<page number>`: renaming
  or moving a file changes nothing, and a file found twice (same bytes) is one document.
- A PDF that cannot be read (encrypted, corrupt, no pages) or an image that will not decode is named with why,
  then stops the stage (`on_bad_document: error`) or is skipped and counted (`skip`).
- The split is by document, seeded: no page of a held-out document is ever trained on.
- `folder_fingerprint` is what the check stage records so that DVC reruns fetch when the folder changes: every
  file's relative path, size and modification time, as DVC itself tracks files.
- `rasterise_pdf` renders every page with pypdfium2 and keeps its text layer (the render stage).
"""

from __future__ import annotations

import hashlib
import io
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


def count_pages(content: bytes, kind: str) -> int:
    """How many pages a document has; ValueError saying why when it cannot be read."""
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
        reason = str(error)
        if "password" in reason.lower():
            reason = "it is encrypted (password protected); decrypt it (e.g. `qpdf --decrypt`) or remove it"
        raise ValueError(f"the PDF cannot be opened: {reason}") from None
    try:
        pages = len(document)
    finally:
        document.close()
    if pages == 0:
        raise ValueError("the PDF has no pages")
    return pages


def read_documents(paths: list[Path], folder: Path, on_bad_document: str) -> tuple[list[Document], list, list]:
    """The documents, once per content; the duplicate files [(name, same as)]; the bad ones [(name, why)].

    With on_bad_document `error`, the first bad file stops with its name and the fix."""
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
            pages = count_pages(content, kind)
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


def rasterise_pdf(content: bytes, dpi: int, max_pages: int | None = None) -> list[tuple[bytes, str, int, int]]:
    """Every page (or the first max_pages) as (PNG bytes, text layer, width, height), rendered at `dpi`."""
    document = pypdfium2.PdfDocument(content)
    pages = []
    try:
        for index in range(len(document) if max_pages is None else min(len(document), max_pages)):
            page = document[index]
            text_page = page.get_textpage()
            text = text_page.get_text_range().replace("\r\n", "\n")
            image = page.render(scale=dpi / 72).to_pil().convert("RGB")
            text_page.close()
            page.close()
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=6)
            pages.append((buffer.getvalue(), text, image.width, image.height))
    finally:
        document.close()
    return pages


def page_rows(job) -> dict:
    """One document's pages as rows (id, document, page, image, text, width, height), for vdr.data.pages.map_pages."""
    document_id, kind, content, pages, dpi, max_pixels = job
    try:
        if kind == "pdf":
            rendered = rasterise_pdf(content, dpi, pages)
        else:
            png, width, height = normalise_image(content, max_pixels)
            rendered = [(png, "", width, height)]  # an image has no text layer: text models read it through OCR
    except Exception as error:  # the document names itself
        raise RuntimeError(f"render: document '{document_id}' could not be rasterised: {error}") from error
    rows = [
        {"id": page_id(document_id, number), "document": document_id, "page": number}
        | {"image": png, "text": text, "width": width, "height": height}
        for number, (png, text, width, height) in enumerate(rendered, start=1)
    ]
    return {"id": document_id, "rows": rows}
