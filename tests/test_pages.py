import io

import numpy as np
import pypdfium2
from PIL import Image

from vdr.data.pages import parse_sections, render_document, table_rows, to_latin1, typeset
from vdr.io.images import decode_image, normalise_image

BODY = """Longer description of the function.

Parameters
----------
values : array_like
    The numbers to add up.
axis : int, optional
    Axis along which to sum.

Returns
-------
total : ndarray
    The sum.

Examples
--------
>>> total([1, 2])
3
"""


def test_parse_sections_and_table_rows():
    sections = parse_sections(BODY)
    assert [name for name, _ in sections] == ["", "Parameters", "Returns", "Examples"]
    rows = table_rows(sections[1][1])
    assert rows == [
        ["values", "array_like", "The numbers to add up."],
        ["axis", "int, optional", "Axis along which to sum."],
    ]


def test_render_document_is_an_a4_page_with_a_text_layer():
    page = render_document("total(values, axis)", BODY, dpi=100)
    image = Image.open(io.BytesIO(page.png))
    assert image.format == "PNG" and image.mode == "L"  # black on white: 8-bit grey, decoded to RGB for the models
    assert (page.width, page.height) == image.size
    assert abs(page.height / page.width - 297 / 210) < 0.01
    assert 800 <= page.width <= 850  # A4 at 100 dpi is 827 x 1169
    for expected in ("total(values, axis)", "Parameters", "array_like", "The numbers to add up.", ">>> total([1, 2])"):
        assert expected in page.text
    # the page has ink: not a blank image
    assert image.convert("L").getextrema()[0] < 50


def test_to_latin1_folds_unicode():
    assert to_latin1("naïve → x²").encode("latin-1")


def test_normalise_image_bounds_pixels_and_converts_to_rgb():
    buffer = io.BytesIO()
    Image.new("L", (400, 300), 128).save(buffer, format="JPEG")
    png, width, height = normalise_image(buffer.getvalue(), max_pixels=30_000)
    assert width * height <= 30_000 and abs(width / height - 4 / 3) < 0.02
    assert Image.open(io.BytesIO(png)).mode == "RGB"


def test_the_grey_page_is_the_colour_rendering_exactly():
    """A typeset page is stored as 8-bit grey: every pixel of pdfium's colour rendering has red = green = blue, so the
    grey PNG decodes (as the models decode it) to the same RGB image."""
    document = pypdfium2.PdfDocument(typeset("total(values, axis)", BODY))
    colour = np.asarray(document[0].render(scale=100 / 72).to_pil().convert("RGB"))
    document.close()
    assert np.array_equal(np.asarray(decode_image(render_document("total(values, axis)", BODY, dpi=100).png)), colour)
