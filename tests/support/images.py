"""Page images as PNG bytes, for tables and requests that hold images.

png()                     # a plain page of one colour (32 x 48 red unless told)
png((7, 0, 0), (8, 8))    # another colour and size: other bytes
page_png(3)               # tiny_vlm.page_image(3): a page screenshot whose look depends on its number
"""

from __future__ import annotations

import io

from PIL import Image

from tests.support.tiny_vlm import page_image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png(color=(200, 0, 0), size=(32, 48)) -> bytes:
    """A plain page image of one colour."""
    return png_bytes(Image.new("RGB", size, color))


def page_png(number: int, width: int = 160, height: int = 208) -> bytes:
    """The page screenshot numbered `number` (tests/support/tiny_vlm.py page_image)."""
    return png_bytes(page_image(number, width, height))
