"""Decoding data: URL images for backends: accepted forms, refused schemes, pixel cap."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from modelserver.errors import InvalidImageError
from modelserver.images import decode_data_url_image
from PIL import Image


def data_url(image: Image.Image, fmt: str = "PNG", media: str = "image/png") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:{media};base64," + base64.b64encode(buffer.getvalue()).decode()


def test_png_with_alpha_becomes_rgb() -> None:
    image = decode_data_url_image(data_url(Image.new("RGBA", (30, 20), (255, 0, 0, 128))))
    assert image.mode == "RGB" and image.size == (30, 20)


def test_jpeg_decodes() -> None:
    image = decode_data_url_image(data_url(Image.new("RGB", (8, 8), "blue"), "JPEG", "image/jpeg"))
    assert image.size == (8, 8)


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "http://10.0.0.1/x.jpg", "file:///etc/passwd"])
def test_other_schemes_are_refused_saying_only_data_urls(url: str) -> None:
    with pytest.raises(InvalidImageError, match="only accepts data: URLs"):
        decode_data_url_image(url)


def test_bad_base64_is_a_clear_error() -> None:
    with pytest.raises(InvalidImageError, match="not valid base64"):
        decode_data_url_image("data:image/png;base64,@@@not-base64@@@")


def test_bytes_that_are_not_an_image() -> None:
    payload = base64.b64encode(b"hello, I am text").decode()
    with pytest.raises(InvalidImageError, match="readable image"):
        decode_data_url_image(f"data:image/png;base64,{payload}")


def test_non_image_media_type_and_non_base64_are_refused() -> None:
    with pytest.raises(InvalidImageError, match="image/"):
        decode_data_url_image("data:text/plain;base64,aGk=")
    with pytest.raises(InvalidImageError, match="base64"):
        decode_data_url_image("data:image/png,rawbytes")


def test_pixel_cap() -> None:
    with pytest.raises(InvalidImageError, match="at most 100 are accepted"):
        decode_data_url_image(data_url(Image.new("RGB", (20, 20))), max_pixels=100)


def test_pixel_cap_is_checked_from_the_header_before_decoding() -> None:
    # A PNG whose header claims 10000 x 10000 but carries almost no data: refused for its
    # size (from the header), not for the missing pixels, so nothing big was allocated.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    with pytest.raises(InvalidImageError, match="10000x10000"):
        decode_data_url_image(url)
