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
