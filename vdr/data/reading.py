"""What a model reads of a page: its text layer, the OCR of its image, or its screenshot.

One way to read a page, whoever reads it (mine, generate, train_embedder's evaluator, embed_base, evaluate,
`vdr-eval`):
  models.page_input: image   the page screenshot (the `image` column)
  models.page_input: text    the page's text layer (the `text` column), and for a page whose text layer is
                             empty (a screenshot, a scanned PDF page) the OCR of its image (vdr/data/ocr.py): a
                             text model reads what tesseract reads, never an empty string it could have read
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from vdr.data.ocr import ocr_images
from vdr.io.images import decode_page

PAGE_INPUTS = ("text", "image")


def has_text(pages: pa.Table) -> bool:
    """Whether the `text` column holds any text (screenshots come with an empty one)."""
    return "text" in pages.column_names and any(isinstance(t, str) and t.strip() for t in pages["text"].to_pylist())


def page_texts(
    pages: pa.Table, where: str | Path, ocr_cache: Path | None = None, ocr_workers: int | None = None
) -> list[str]:
    """What a text-only model reads of each page: its `text`, and the OCR of its `image` where the text is empty."""
    if has_text(pages):
        texts = pages["text"].to_pylist()
        if None in texts:
            row = texts.index(None)
            raise ValueError(
                f"{where}: column 'text', row {row} (id '{page_ids(pages)[row]}') is null while other pages have "
                "text; write '' for a page without a text layer, or fill it in"
            )
        images = pages["image"] if "image" in pages.column_names else None
        blank = [
            row for row, text in enumerate(texts) if not text.strip() and images is not None and images[row].is_valid
        ]
        if blank:  # pages with no text layer among pages with one: read their images
            ids = page_ids(pages)
            found = [images[row].as_py() for row in blank]
            names = [f"{where}, id '{ids[row]}'" for row in blank]
            for row, text in zip(blank, ocr_images(found, ocr_cache, ocr_workers, names)):
                texts[row] = text
        return texts
    if "image" not in pages.column_names:
        if "text" in pages.column_names:
            raise ValueError(
                f"{where}: the 'text' column is empty in every row and there is no 'image' column to read with "
                "OCR; fill in the page texts or add the page images"
            )
        raise ValueError(f"{where}: the pages need a 'text' or an 'image' column")
    if pages["image"].null_count:
        raise ValueError(
            f"{where}: {pages['image'].null_count} row(s) have no image to read with OCR; "
            "fill the 'image' column or add a 'text' column"
        )
    names = [f"{where}, id '{page_id}'" for page_id in pages["id"].to_pylist()]
    return ocr_images(pages["image"].to_pylist(), ocr_cache, ocr_workers, names)


def read_pages(
    pages: pa.Table,
    page_input: str,
    where: str | Path,
    ocr_cache: Path | None = None,
    ocr_workers: int | None = None,
    decode: bool = True,
    lazy: bool = False,
) -> list:
    """What the models read of each page, as models.page_input says: the screenshots (decoded RGB images, or
    their PNG/JPEG bytes with decode=False; with lazy=True a `Screenshots` sequence that decodes them when read),
    or page_texts (text layer, else OCR)."""
    if page_input not in PAGE_INPUTS:
        raise ValueError(f"models.page_input: '{page_input}' is not one of {PAGE_INPUTS}")
    if page_input == "text":
        return page_texts(pages, where, ocr_cache, ocr_workers)
    if "image" not in pages.column_names:
        raise ValueError(f"{where}: models.page_input is image, but the pages have no 'image' column")
    if lazy and decode:
        return Screenshots(pages["image"], [f"{where}, id '{page_id}'" for page_id in page_ids(pages)])
    images = pages["image"].to_pylist()
    if not decode:
        return images
    return [decode_page(data, f"{where}, id '{page_id}'") for data, page_id in zip(images, page_ids(pages))]


class Screenshots(Sequence):
    """Page screenshots decoded when read, an item or a slice (a list) at a time, never all at once: the encoders
    take them a chunk at a time (vdr/retrieval/encode.py encode_documents), so a corpus of screenshots costs its
    encoded bytes (the Arrow column) plus one chunk of decoded images. A bad image names its page when it is read."""

    decoded_on_read = True

    def __init__(self, images: pa.ChunkedArray | pa.Array, names: list[str]):
        self.images, self.names = images, names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            data = self.images.slice(start, max(0, stop - start)).to_pylist()
            return [decode_page(image, name) for image, name in zip(data, self.names[start:stop])]
        index = int(index) + (len(self) if index < 0 else 0)
        return decode_page(self.images[index].as_py(), self.names[index])


def page_ids(pages: pa.Table) -> list[str]:
    """The pages' ids (the `id` column), or their row numbers where a table has none: what an error names."""
    if "id" in pages.column_names:
        return [str(i) for i in pages["id"].to_pylist()]
    return [f"row {row}" for row in range(pages.num_rows)]


def page_input_for(pages: pa.Table, model) -> str:
    """For a model given without params (vdr-eval): the text layer when the pages have one, else the
    screenshots for a model that reads images, else their OCR."""
    reads_images = not has_text(pages) and "image" in pages.column_names and model.supports("image")
    return "image" if reads_images else "text"
