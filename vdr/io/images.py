"""Page images: decode what a shard holds, normalise what a dataset gives.

Small on purpose: every model stage decodes page images, and only what it imports reruns it.
"""

from __future__ import annotations

import io

from PIL import Image


def normalise_image(image_bytes: bytes, max_pixels: int) -> tuple[bytes, int, int]:
    """Decode any image, convert to RGB and shrink it (aspect kept) to at most `max_pixels` pixels; PNG bytes."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image = image.convert("RGB")
        if image.width * image.height > max_pixels:
            scale = (max_pixels / (image.width * image.height)) ** 0.5
            image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue(), image.width, image.height


def decode_image(image_bytes: bytes) -> Image.Image:
    """PNG/JPEG bytes from a shard -> an RGB PIL image, as a multimodal model takes it."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        return image.convert("RGB")


def undecodable(error: Exception) -> str:
    """Why page image bytes could not be decoded, and the fix: Pillow's decompression-bomb limit (the size, the
    limit, how to shrink it), or bytes that are no valid image."""
    if isinstance(error, Image.DecompressionBombError):
        return (
            f"the page image is too large to decode ({error}); shrink it to at most {Image.MAX_IMAGE_PIXELS or 0:,} "
            "pixels (e.g. PIL's Image.thumbnail((4096, 4096)) before writing the corpus; the render stage does it "
            "with render.max_pixels)"
        )
    return (
        f"the page image could not be decoded ({type(error).__name__}: {error}); "
        "replace it with valid PNG or JPEG bytes, or drop the page and its qrels lines"
    )


def decode_page(image_bytes: bytes | None, name: str) -> Image.Image:
    """decode_image, or one ValueError that names the page (`name`, e.g. "corpus.parquet, id 'p1'") and the fix."""
    if image_bytes is None:
        raise ValueError(f"{name}: no page image (a null cell); fill in the image bytes or drop the page")
    try:
        return decode_image(image_bytes)
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        raise ValueError(f"{name}: {undecodable(error)}") from None
