"""Image admission: sniff, bound, decode, orient, flatten, resize, re-encode, hash.

Every image that enters the gateway (``data:`` URL, fetched URL, uploaded file) goes
through :func:`normalise_image`, so the model stages only ever see one of a few known
formats, RGB, at most ``max_side`` pixels on the longest side, and the SHA-256 of the
re-encoded bytes is a stable cache key.

Exceptions (all carry ``.code`` and ``.message``; the gateway maps them to HTTP 400/413)::

    ImageError
    ├── InvalidImageError            bad base64, empty, truncated, corrupt, declared type ≠ bytes
    ├── ImageTooLargeError           too many bytes, or too many pixels (decompression bombs)
    └── UnsupportedImageFormatError  SVG, HTML, PDF, TIFF, HEIC, ... anything not on the allowlist

The format is always sniffed from the bytes: a data URL's media type or a file name is
only compared against what the bytes say, never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WebP", "GIF", "BMP")
_ACCEPTED_TEXT = ", ".join(ACCEPTED_FORMATS)

# Output formats: MIME type and Pillow save options. PNG keeps screenshot text crisp.
_ENCODERS: dict[str, tuple[str, dict[str, object]]] = {
    "PNG": ("image/png", {"compress_level": 6}),
    "JPEG": ("image/jpeg", {"quality": 90, "subsampling": 0}),
}

# Magic-byte sniffers, in order. Accepted formats map to the Pillow plugin name; the
# rejected ones are listed only so the error can say what the bytes actually were.
_SNIFFERS: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("JPEG", lambda b: b.startswith(b"\xff\xd8\xff")),
    ("PNG", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    ("GIF", lambda b: b[:6] in (b"GIF87a", b"GIF89a")),
    ("WEBP", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
    ("BMP", lambda b: b.startswith(b"BM") and len(b) >= 26),
)
_REJECTED_SNIFFERS: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("SVG", lambda b: b"<svg" in b[:1024].lower()),
    ("HTML", lambda b: b.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html", b"<head", b"<body"))),
    ("PDF", lambda b: b.startswith(b"%PDF")),
    ("TIFF", lambda b: b[:4] in (b"II*\x00", b"MM\x00*")),
    ("HEIC/AVIF", lambda b: b[4:8] == b"ftyp"),
    ("XML", lambda b: b.lstrip().startswith(b"<?xml")),
    ("text", lambda b: b.lstrip()[:1] in (b"{", b"[", b"<")),
)

# Declared media types of a data URL → the format the bytes must then be.
_DECLARED_TYPES: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/x-bmp": "BMP",
    "image/x-ms-bmp": "BMP",
}
_UNTYPED = ("", "application/octet-stream")  # "data:;base64,..." declares nothing: sniff only

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


class ImageError(Exception):
    """An image the gateway will not accept; ``message`` says why and what is accepted."""

    code = "invalid_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImageError(ImageError):
    """Bytes that are not a well-formed image (or not the image they claim to be)."""

    code = "invalid_image"


class ImageTooLargeError(ImageError):
    """Too many bytes or pixels."""

    code = "image_too_large"


class UnsupportedImageFormatError(ImageError):
    """A real file, but not one of the accepted formats."""

    code = "unsupported_image_format"


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Admission limits; the gateway builds one from its Settings."""

    max_image_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 1024
    output_format: str = "PNG"
    max_decoded_bytes: int = 160 * 1024 * 1024
    """Decoded size (pixels x channels x bytes per channel) one image may have: 16-bit
    and alpha images cost up to 8 bytes a pixel, so a pixel cap alone does not bound memory."""

    def __post_init__(self) -> None:
        if self.output_format not in _ENCODERS:
            raise ValueError(f"output_format {self.output_format!r} is not one of {sorted(_ENCODERS)}")
        if min(self.max_image_bytes, self.max_pixels, self.max_side, self.max_decoded_bytes) <= 0:
            raise ValueError("image limits must be positive")


@dataclass(frozen=True, slots=True)
class NormalisedImage:
    """A validated RGB image, re-encoded, with the SHA-256 of its bytes as cache key."""

    data: bytes
    mime: str
    sha256: str
    width: int
    height: int
    source_format: str

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def sniff_format(raw: bytes) -> str:
    """Return the Pillow format name the bytes really are, or raise saying what they are."""
    if not raw:
        raise InvalidImageError(f"image is empty (0 bytes); accepted formats: {_ACCEPTED_TEXT}")
    for name, matches in _SNIFFERS:
        if matches(raw):
            return name
    found = next((name for name, matches in _REJECTED_SNIFFERS if matches(raw)), None)
    if found:
        raise UnsupportedImageFormatError(
            f"image bytes are {found}, which is not accepted; accepted formats: {_ACCEPTED_TEXT}"
        )
    raise UnsupportedImageFormatError(
        f"image bytes are not a recognised image format; accepted formats: {_ACCEPTED_TEXT}"
    )


def decode_data_url(url: str, *, limits: ImageLimits) -> bytes:
    """Decode a ``data:image/...;base64,`` URL, checking size before decoding and type after."""
    if not url[:5].lower() == "data:":
        raise InvalidImageError("image URL is not a data: URL")
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise InvalidImageError("data: URL has no ',' separating the media type from the data")
    media_type, *params = (p.strip().lower() for p in header.split(";"))
    if "base64" not in params:
        raise InvalidImageError("data: URL must be base64-encoded (data:image/png;base64,...)")
    if media_type not in _UNTYPED and media_type not in _DECLARED_TYPES:
        raise UnsupportedImageFormatError(
            f"data: URL declares media type {media_type!r}, which is not accepted; "
            f"accepted formats: {_ACCEPTED_TEXT}"
        )
    # Bound the work before decoding: 4 base64 characters carry 3 bytes.
    approx_bytes = len(payload) * 3 // 4
    if approx_bytes > limits.max_image_bytes:
        raise ImageTooLargeError(
            f"image is about {_mb(approx_bytes)} after base64 decoding; "
            f"limit is {_mb(limits.max_image_bytes)}"
        )
    compact = "".join(payload.split())  # tolerate line-wrapped base64
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"data: URL payload is not valid base64 ({exc})") from exc
    found = sniff_format(raw)
    declared = _DECLARED_TYPES.get(media_type)
    if declared and declared != found:
        raise InvalidImageError(
            f"data: URL declares {media_type} but the bytes are {found}; send the real media type"
        )
    return raw


def _open_bounded(raw: bytes, fmt: str, limits: ImageLimits) -> Image.Image:
    """Open (header only), refuse bombs by pixel count, then decode the first frame."""
    try:
        im = Image.open(io.BytesIO(raw), formats=[fmt])
        width, height = im.size
        if width * height > limits.max_pixels:
            raise ImageTooLargeError(
                f"image is {width}x{height} = {width * height:,} pixels; "
                f"limit is {limits.max_pixels:,} pixels"
            )
        if fmt == "JPEG":
            # DCT-domain downscale while decoding: large photos cost a fraction of the memory.
            im.draft(None, (limits.max_side, limits.max_side))
        cost = decoded_size(im)
        if cost > limits.max_decoded_bytes:
            raise ImageTooLargeError(
                f"image is {width}x{height} with {_depth_text(im)}: {_mb(cost)} decoded; "
                f"limit is {_mb(limits.max_decoded_bytes)} per image "
                "(send it with fewer pixels or 8-bit colour)"
            )
        im.seek(0)  # animated GIF/WebP: the first frame
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image has too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"image bytes start like {fmt} but are not a readable {fmt} file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"{fmt} image is truncated or corrupt ({exc})") from exc
    return im


def _to_rgb(im: Image.Image) -> Image.Image:
    """Flatten any mode to 8-bit RGB; transparency is composited onto white."""
    if im.mode in _WIDE_GREY_MODES:
        # Pillow's I;16 → L conversion clips at 255 instead of scaling.
        im = im.convert("I").point(lambda v: v / 256).convert("L")
    if "transparency" in im.info and im.mode not in _ALPHA_MODES:
        im = im.convert("RGBA")  # palette / colour-key transparency (GIF, PNG tRNS)
    if im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _channel_bytes(im: Image.Image) -> int:
    """Bytes per channel the decoder produces: PNG keeps 16-bit samples while decoding (rawmode ``;16``)."""
    tile = getattr(im, "tile", None)  # opened files (ImageFile) only: what the decoder will produce
    rawmode = tile[0][3] if tile else im.mode
    rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
    if im.mode in ("I", "F") or "32" in str(rawmode):
        return 4
    return 2 if "16" in str(rawmode) else 1


def decoded_size(im: Image.Image) -> int:
    """Bytes an opened (not yet loaded) image takes decoded: pixels x channels x bytes per channel."""
    width, height = im.size
    return width * height * len(im.getbands()) * _channel_bytes(im)


def _depth_text(im: Image.Image) -> str:
    return f"{len(im.getbands())} channels of {8 * _channel_bytes(im)} bits"


def declared_decoded_size(raw: bytes) -> int | None:
    """:func:`decoded_size` from the image header alone (cheap), or None when the header is unreadable."""
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return decoded_size(im)
    except Exception:  # normalise_image reports what is wrong, with the right error
        return None


def declared_pixels(raw: bytes) -> int | None:
    """Width x height from the image header alone (cheap), or None when the header is unreadable."""
    try:
        with Image.open(io.BytesIO(raw)) as im:
            width, height = im.size
    except Exception:  # normalise_image reports what is wrong, with the right error
        return None
    return width * height


def normalise_image(raw: bytes, *, limits: ImageLimits) -> NormalisedImage:
    """Validate and normalise one image. CPU-bound: call it from a worker thread."""
    if len(raw) > limits.max_image_bytes:
        raise ImageTooLargeError(f"image is {_mb(len(raw))}; limit is {_mb(limits.max_image_bytes)}")
    fmt = sniff_format(raw)
    im = _open_bounded(raw, fmt, limits)
    source_format = im.format or fmt
    try:
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"{fmt} image could not be decoded ({exc})") from exc
    if max(im.size) > limits.max_side:
        im.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
    mime, options = _ENCODERS[limits.output_format]
    out = io.BytesIO()
    im.save(out, format=limits.output_format, **options)
    data = out.getvalue()
    return NormalisedImage(
        data=data,
        mime=mime,
        sha256=hashlib.sha256(data).hexdigest(),
        width=im.width,
        height=im.height,
        source_format=source_format,
    )
