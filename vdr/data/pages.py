"""Typeset a document to a one-page A4 PDF and rasterise it with pypdfium2; run page jobs side by side.

A document is a title plus a numpydoc-style body: plain paragraphs become body text, sections
("Parameters" underlined with dashes) become headings, entries of Parameters/Returns/... sections
become a table, and Examples become monospaced text. The page is what a model sees: an image,
and the PDF's own text layer for text-only models.

The render stage turns every document (or given screenshot) into a page through `map_pages`: one job
per page in `workers` processes, where a page that fails gives {"id", "error"} instead of stopping the
pool, and `bad_pages` then stops the stage naming the first one, or counts them (render.on_bad_page).
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pypdfium2
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos
from tqdm import tqdm

from vdr.io.images import normalise_image

TABLE_SECTIONS = {"parameters", "returns", "yields", "attributes", "raises", "other parameters", "warns", "receives"}


CODE_SECTIONS = {"examples"}


SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")


ENTRY = re.compile(r"^(\S[^:]*?)\s*:\s*(.*)$")


@dataclass(frozen=True)
class RenderedPage:
    png: bytes
    text: str  # the PDF text layer of the page
    width: int
    height: int


def to_latin1(text: str) -> str:
    """The built-in PDF fonts cover Latin-1 only: fold everything else to its closest form."""
    folded = unicodedata.normalize("NFKD", text)
    return folded.encode("latin-1", "replace").decode("latin-1").replace("\t", "    ")


def parse_sections(body: str) -> list[tuple[str, list[str]]]:
    """Split a numpydoc body into (section name, lines); text before the first heading is section ''."""
    lines = body.splitlines()
    sections: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and SECTION_RULE.match(lines[i + 1]):
            sections.append((lines[i].strip(), []))
            i += 2
            continue
        sections[-1][1].append(lines[i])
        i += 1
    return [(name, body_lines) for name, body_lines in sections if name or any(line.strip() for line in body_lines)]


def table_rows(lines: list[str]) -> list[list[str]]:
    """Entries 'name : type' followed by indented descriptions -> [name, type, description] rows."""
    rows: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        if not line[0].isspace():
            match = ENTRY.match(line.strip())
            name, kind = (match.group(1), match.group(2)) if match else (line.strip(), "")
            rows.append([name, kind, ""])
        elif rows:
            rows[-1][2] = (rows[-1][2] + " " + line.strip()).strip()
    return rows


class _Page(FPDF):
    def __init__(self):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(18, 15, 18)
        self.add_page()


def typeset(title: str, body: str) -> bytes:
    """A PDF (bytes) of the document; content past the first page goes to later pages."""
    pdf = _Page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, to_latin1(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    for name, lines in parse_sections(body):
        if name:
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 12)
            pdf.cell(0, 7, to_latin1(name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        rows = table_rows(lines) if name.lower() in TABLE_SECTIONS else []
        if rows:
            pdf.set_font("Helvetica", "", 9)
            with pdf.table(col_widths=(25, 25, 50), line_height=4.5, text_align="LEFT") as table:
                table.row(["Name", "Type", "Description"])
                for row in rows:
                    table.row([to_latin1(cell) for cell in row])
            continue
        if name.lower() in CODE_SECTIONS:
            pdf.set_font("Courier", "", 8.5)
            text = "\n".join(lines).strip("\n")
            pdf.multi_cell(0, 4, to_latin1(text), wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            continue
        pdf.set_font("Helvetica", "", 10.5)
        for paragraph in re.split(r"\n\s*\n", "\n".join(lines)):
            paragraph = " ".join(paragraph.split())
            if paragraph:
                pdf.multi_cell(0, 5, to_latin1(paragraph), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1.5)
    return bytes(pdf.output())


def rasterise_first_page(pdf_bytes: bytes, dpi: int) -> RenderedPage:
    document = pypdfium2.PdfDocument(pdf_bytes)
    try:
        page = document[0]
        text_page = page.get_textpage()
        text = text_page.get_text_range()
        # 8-bit grey: a typeset page is black on white, its red, green and blue equal in every pixel (the glyphs'
        # anti-aliased edges too), so grey loses nothing and the PNG is half the bytes, written in half the time;
        # decode_image gives the models RGB
        image = page.render(scale=dpi / 72).to_pil().convert("L")
        text_page.close()
        page.close()
    finally:
        document.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return RenderedPage(png=buffer.getvalue(), text=text.replace("\r\n", "\n"), width=image.width, height=image.height)


def render_document(title: str, body: str, dpi: int) -> RenderedPage:
    return rasterise_first_page(typeset(title, body), dpi)


def _render(job):  # one document -> its first page
    doc_id, title, body, dpi = job
    try:
        page = render_document(title, body, dpi)
    except Exception as error:  # a document that cannot be typeset names itself
        raise RuntimeError(f"render: document '{doc_id}' could not be typeset or rasterised: {error}") from error
    return {"id": doc_id, "image": page.png, "text": page.text, "width": page.width, "height": page.height}


def _or_error(work, job):
    try:
        return work(job)
    except RuntimeError as error:
        return {"id": job[0], "error": str(error)}


def map_pages(work, jobs: list[tuple], workers: int, description: str, unit: str = "document") -> list[dict]:
    """work(job) for every job, in `workers` processes; a job that fails gives {"id", "error"} instead. The progress
    bar says `description` (the stage's words: "render train") and counts jobs as `unit`s."""
    guarded = functools.partial(_or_error, work)
    if workers == 1:
        return [guarded(job) for job in tqdm(jobs, desc=description, unit=unit)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(guarded, jobs, chunksize=8), total=len(jobs), desc=description, unit=unit))


def render_all(documents: pa.Table, dpi: int, workers: int, description: str) -> list[dict]:
    """One page per document; a document that fails gives {"id", "error"} instead."""
    jobs = [
        (d, t, b, dpi)
        for d, t, b in zip(documents["id"].to_pylist(), documents["title"].to_pylist(), documents["body"].to_pylist())
    ]
    return map_pages(_render, jobs, workers, description)


def _normalise(job):
    doc_id, data, max_pixels = job
    try:
        png, width, height = normalise_image(data, max_pixels)
    except Exception as error:
        raise RuntimeError(f"render: the image of '{doc_id}' could not be decoded: {error}") from error
    return {"id": doc_id, "image": png, "text": "", "width": width, "height": height}


def normalise_all(ids: list[str], images: list[bytes], max_pixels: int, workers: int, description: str) -> list[dict]:
    """One page per image; an image that fails gives {"id", "error"} instead."""
    jobs = [(d, data, max_pixels) for d, data in zip(ids, images)]
    return map_pages(_normalise, jobs, workers, description, unit="image")


def bad_pages(pages: list[dict], on_bad_page: str, where: Path, unit: str = "page(s)") -> int:
    """How many pages (or documents: `unit`) failed; with render.on_bad_page: error the first one stops the stage,
    named."""
    failed = [page for page in pages if "error" in page]
    if failed and on_bad_page == "error":
        raise RuntimeError(
            f"{failed[0]['error']} ({where}: {len(failed)} bad {unit} in all; "
            "fix the data, or set render.on_bad_page: skip "
            "to drop them and count them in metrics/render.json)"
        )
    return len(failed)
