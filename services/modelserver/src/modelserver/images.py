"""Decoding the ``data:`` URL images backends receive.

The gateway fetches and normalises every image and forwards only ``data:image/...;base64,``
URLs, so the model services never fetch anything: any other scheme is refused.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings

from PIL import Image, UnidentifiedImageError

from modelserver.errors import InvalidImageError

DEFAULT_MAX_PIXELS = 40_000_000
"""About 6300 x 6300: far above what the gateway sends (longest side 1024 by default)."""


def decode_data_url_image(url: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a ``data:image/...;base64,`` URL to an RGB image, refusing oversized pictures.

    The pixel count is checked from the header before the pixels are decoded, so a small
    file that expands to a huge bitmap (a "decompression bomb") costs no memory.
    """
    header, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep:
        scheme = url.split(":", 1)[0] if ":" in url[:16] else url[:16]
        raise InvalidImageError(
            f"the model service only accepts data: URLs (data:image/...;base64,...), got {scheme!r}; "
            "send http(s) images through the gateway, which fetches them"
        )
    media_type, _, params = header.removeprefix("data:").partition(";")
    if not media_type.startswith("image/"):
        raise InvalidImageError(f"data: URL media type must be image/*, got {media_type or 'none'!r}")
    if "base64" not in params.split(";"):
        raise InvalidImageError("data: URL images must be base64-encoded (data:image/...;base64,...)")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"the image data: URL is not valid base64: {exc}") from exc
    if not raw:
        raise InvalidImageError("the image data: URL is empty")
    return _open_rgb(raw, max_pixels=max_pixels)


def _open_rgb(raw: bytes, *, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns (and above 2x raises) on MAX_IMAGE_PIXELS; we apply our own cap instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))  # lazy: reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidImageError(
                    f"image is {width}x{height} = {width * height} pixels; at most {max_pixels} are accepted"
                )
            image.load()
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"image is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"the data: URL does not contain a readable image: {exc}") from exc
    return image if image.mode == "RGB" else image.convert("RGB")
