"""Hostile and ordinary inputs for gateway.images.normalise: every rejection names the problem."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import time
import zlib

import pytest
from gateway.images.normalise import (
    ImageError,
    ImageLimits,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedImageFormatError,
    decode_data_url,
    normalise_image,
    sniff_format,
)
from PIL import Image

LIMITS = ImageLimits()
ACCEPTED = "JPEG, PNG, WebP, GIF, BMP"
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def data_url(raw: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(raw).decode()}"


def halves(size: tuple[int, int] = (200, 100)) -> Image.Image:
    """Left half red, right half blue: orientation is visible in the pixels."""
    im = Image.new("RGB", size, RED)
    im.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return im


def decoded(result_data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(result_data))
    im.load()
    return im


def near(a: object, b: tuple[int, ...], tol: int = 12) -> bool:
    assert isinstance(a, tuple), a
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header claims width x height pixels (no pixel data worth the name)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def assert_error(exc_info: pytest.ExceptionInfo[ImageError], cls: type, code: str, *words: str) -> None:
    err = exc_info.value
    assert type(err) is cls
    assert err.code == code
    for word in words:
        assert word.lower() in err.message.lower(), (word, err.message)


# --- accepted formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected_source"),
    [("PNG", "PNG"), ("JPEG", "JPEG"), ("WEBP", "WEBP"), ("GIF", "GIF"), ("BMP", "BMP")],
)
def test_each_accepted_format_becomes_rgb_png_with_matching_hash(fmt: str, expected_source: str) -> None:
    raw = encode(halves(), fmt)
    result = normalise_image(raw, limits=LIMITS)
    assert result.source_format == expected_source
    assert result.mime == "image/png" and result.data.startswith(b"\x89PNG")
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    assert (result.width, result.height) == (200, 100)
    out = decoded(result.data)
    assert out.mode == "RGB"
    assert near(out.getpixel((10, 50)), RED) and near(out.getpixel((190, 50)), BLUE)


def test_tiny_one_pixel_image_is_kept_at_one_pixel() -> None:
    result = normalise_image(encode(Image.new("RGB", (1, 1), BLUE), "PNG"), limits=LIMITS)
    assert (result.width, result.height) == (1, 1)
    assert decoded(result.data).getpixel((0, 0)) == BLUE


def test_identical_bytes_give_identical_hash_and_different_pixels_do_not() -> None:
    raw = encode(halves(), "JPEG", quality=80)
    first, second = normalise_image(raw, limits=LIMITS), normalise_image(raw, limits=LIMITS)
    assert first.sha256 == second.sha256 and first.data == second.data
    other = normalise_image(encode(halves().transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG"), limits=LIMITS)
    assert other.sha256 != first.sha256


def test_jpeg_output_option_re_encodes_as_jpeg() -> None:
    result = normalise_image(encode(halves(), "PNG"), limits=ImageLimits(output_format="JPEG"))
    assert result.mime == "image/jpeg" and result.data.startswith(b"\xff\xd8\xff")
    assert result.data_url().startswith("data:image/jpeg;base64,")


def test_unknown_output_format_is_a_config_error_listing_known_ones() -> None:
    with pytest.raises(ValueError, match="JPEG"):
        ImageLimits(output_format="TIFF")


def test_data_url_round_trips_through_decode() -> None:
    result = normalise_image(encode(halves(), "PNG"), limits=LIMITS)
    assert decode_data_url(result.data_url(), limits=LIMITS) == result.data


# --- size caps and resizing -------------------------------------------------------------------


def test_huge_but_allowed_photo_is_resized_to_1024_on_the_longest_side() -> None:
    raw = encode(halves((4000, 3000)), "JPEG", quality=85)
    result = normalise_image(raw, limits=LIMITS)
    assert (result.width, result.height) == (1024, 768)
    out = decoded(result.data)
    assert near(out.getpixel((100, 384)), RED) and near(out.getpixel((924, 384)), BLUE)


def test_portrait_png_is_capped_on_its_height() -> None:
    result = normalise_image(encode(halves((600, 3000)), "PNG"), limits=LIMITS)
    assert (result.width, result.height) == (205, 1024)


def test_bomb_png_claiming_100000_by_100000_is_refused_from_its_header() -> None:
    raw = bomb_png(100_000, 100_000)
    assert len(raw) < 100
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as exc_info:
        normalise_image(raw, limits=LIMITS)
    assert time.perf_counter() - started < 1.0  # never decoded
    assert_error(exc_info, ImageTooLargeError, "image_too_large", "pixels")


def test_pixel_cap_is_checked_before_decoding_and_names_the_dimensions() -> None:
    raw = bomb_png(8000, 6000)  # 48 MP > 40 MP default, below Pillow's own bomb limit
    with pytest.raises(ImageTooLargeError) as exc_info:
        normalise_image(raw, limits=LIMITS)
    assert_error(exc_info, ImageTooLargeError, "image_too_large", "8000x6000", "48,000,000", "40,000,000")


def test_pillow_decompression_bomb_error_becomes_image_too_large() -> None:
    # With a generous configured cap, Pillow's own bomb guard fires first; it must still map.
    raw = bomb_png(20_000, 10_000)  # 200 MP > Pillow's 2 x 89 MP hard limit
    with pytest.raises(ImageTooLargeError) as exc_info:
        normalise_image(raw, limits=ImageLimits(max_pixels=10**12))
    assert_error(exc_info, ImageTooLargeError, "image_too_large", "pixels")


def test_raw_byte_cap_applies_to_fetched_or_uploaded_bytes() -> None:
    raw = encode(halves(), "PNG")
    with pytest.raises(ImageTooLargeError) as exc_info:
        normalise_image(raw, limits=ImageLimits(max_image_bytes=100))
    assert_error(exc_info, ImageTooLargeError, "image_too_large", "limit")


def test_base64_length_is_capped_before_decoding() -> None:
    # "!" is not base64: had it been decoded first, this would be a base64 error instead.
    url = "data:image/png;base64," + "!" * 2000
    with pytest.raises(ImageTooLargeError) as exc_info:
        decode_data_url(url, limits=ImageLimits(max_image_bytes=1000))
    assert_error(exc_info, ImageTooLargeError, "image_too_large", "base64", "limit")


# --- broken and disguised bytes ---------------------------------------------------------------


def test_zero_bytes_are_refused_as_empty() -> None:
    with pytest.raises(InvalidImageError) as exc_info:
        normalise_image(b"", limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "empty", ACCEPTED)


def test_empty_data_url_payload_is_refused_as_empty() -> None:
    with pytest.raises(InvalidImageError) as exc_info:
        decode_data_url("data:image/png;base64,", limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "empty")


def test_truncated_jpeg_is_refused() -> None:
    raw = encode(halves((400, 300)), "JPEG")
    with pytest.raises(InvalidImageError) as exc_info:
        normalise_image(raw[: len(raw) // 2], limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "JPEG", "truncated")


def test_truncated_png_is_refused() -> None:
    raw = encode(halves((400, 300)), "PNG")
    with pytest.raises(InvalidImageError) as exc_info:
        normalise_image(raw[:60], limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "PNG")


def test_png_magic_followed_by_garbage_is_refused() -> None:
    with pytest.raises(InvalidImageError) as exc_info:
        normalise_image(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "PNG")


def test_html_declared_as_png_is_refused_as_html() -> None:
    html = b"<!DOCTYPE html><html><body>not a picture</body></html>"
    with pytest.raises(UnsupportedImageFormatError) as exc_info:
        decode_data_url(data_url(html, "image/png"), limits=LIMITS)
    assert_error(exc_info, UnsupportedImageFormatError, "unsupported_image_format", "HTML", ACCEPTED)


def test_svg_bytes_are_refused_listing_accepted_formats() -> None:
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with pytest.raises(UnsupportedImageFormatError) as exc_info:
        normalise_image(svg, limits=LIMITS)
    assert_error(exc_info, UnsupportedImageFormatError, "unsupported_image_format", "SVG", ACCEPTED)


def test_svg_media_type_is_refused_before_decoding() -> None:
    with pytest.raises(UnsupportedImageFormatError) as exc_info:
        decode_data_url("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", limits=LIMITS)
    assert_error(exc_info, UnsupportedImageFormatError, "unsupported_image_format", "image/svg+xml", ACCEPTED)


def test_text_html_media_type_is_refused() -> None:
    with pytest.raises(UnsupportedImageFormatError) as exc_info:
        decode_data_url("data:text/html;base64,PGh0bWw+", limits=LIMITS)
    assert_error(exc_info, UnsupportedImageFormatError, "unsupported_image_format", "text/html")


def test_pdf_bytes_are_refused_as_pdf() -> None:
    with pytest.raises(UnsupportedImageFormatError) as exc_info:
        normalise_image(b"%PDF-1.7\n1 0 obj<<>>endobj\n", limits=LIMITS)
    assert_error(exc_info, UnsupportedImageFormatError, "unsupported_image_format", "PDF")


def test_unrecognised_bytes_are_refused_listing_accepted_formats() -> None:
    with pytest.raises(UnsupportedImageFormatError) as exc_info:
        sniff_format(b"\x00\x01\x02\x03 random bytes")
    assert_error(exc_info, UnsupportedImageFormatError, "unsupported_image_format", ACCEPTED)


def test_bad_base64_is_refused_as_base64() -> None:
    with pytest.raises(InvalidImageError) as exc_info:
        decode_data_url("data:image/png;base64,iVBOR$$$not*base64", limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "base64")


def test_declared_media_type_that_disagrees_with_bytes_names_both() -> None:
    jpeg = encode(halves(), "JPEG")
    with pytest.raises(InvalidImageError) as exc_info:
        decode_data_url(data_url(jpeg, "image/png"), limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "declares image/png", "JPEG")


def test_non_base64_data_url_is_refused() -> None:
    with pytest.raises(InvalidImageError) as exc_info:
        decode_data_url("data:image/png,%89PNG", limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "base64")


def test_data_url_without_comma_is_refused() -> None:
    with pytest.raises(InvalidImageError) as exc_info:
        decode_data_url("data:image/png;base64", limits=LIMITS)
    assert_error(exc_info, InvalidImageError, "invalid_image", "','")


def test_untyped_and_line_wrapped_data_url_is_sniffed() -> None:
    raw = encode(halves(), "GIF")
    b64 = base64.b64encode(raw).decode()
    wrapped = "\n".join(b64[i : i + 40] for i in range(0, len(b64), 40))
    assert decode_data_url(f"data:;base64,{wrapped}", limits=LIMITS) == raw
    assert decode_data_url(f"DATA:IMAGE/GIF;BASE64,{b64}", limits=LIMITS) == raw


# --- modes: animation, CMYK, 16-bit, palette, alpha --------------------------------------------


def test_animated_gif_uses_its_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 2
    result = normalise_image(buf.getvalue(), limits=LIMITS)
    assert near(decoded(result.data).getpixel((16, 16)), RED)


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # pure red in CMYK
    result = normalise_image(encode(cmyk, "JPEG"), limits=LIMITS)
    out = decoded(result.data)
    assert out.mode == "RGB" and near(out.getpixel((32, 32)), RED, tol=20)


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped() -> None:
    grey = Image.new("I;16", (16, 16), 32768)  # mid-grey in 16 bits
    result = normalise_image(encode(grey, "PNG"), limits=LIMITS)
    assert near(decoded(result.data).getpixel((8, 8)), (128, 128, 128), tol=2)


def test_palette_with_transparency_composites_onto_white() -> None:
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    pal.paste(1, (10, 0, 20, 20))
    raw = encode(pal, "PNG", transparency=0)  # index 0 (black) is transparent
    out = decoded(normalise_image(raw, limits=LIMITS).data)
    assert out.getpixel((5, 5)) == WHITE and out.getpixel((15, 5)) == RED


def test_rgba_alpha_is_composited_onto_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    rgba.paste((0, 0, 255, 128), (5, 0, 10, 10))
    out = decoded(normalise_image(encode(rgba, "PNG"), limits=LIMITS).data)
    assert out.getpixel((2, 2)) == WHITE
    assert near(out.getpixel((7, 2)), (127, 127, 255), tol=2)


def test_la_greyscale_with_alpha_becomes_rgb() -> None:
    la = Image.new("LA", (10, 10), (0, 0))
    out = decoded(normalise_image(encode(la, "PNG"), limits=LIMITS).data)
    assert out.mode == "RGB" and out.getpixel((5, 5)) == WHITE


# --- EXIF orientation -------------------------------------------------------------------------


def rotated_with_exif(upright: Image.Image, fmt: str) -> bytes:
    """Store the pixels rotated 90° CCW and tag orientation 6 ("rotate 90° CW to display")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(upright.rotate(90, expand=True), fmt, exif=exif.tobytes())


def test_exif_rotated_jpeg_is_displayed_upright() -> None:
    raw = rotated_with_exif(halves(), "JPEG")
    assert Image.open(io.BytesIO(raw)).size == (100, 200)  # stored sideways
    result = normalise_image(raw, limits=LIMITS)
    assert (result.width, result.height) == (200, 100)
    out = decoded(result.data)
    assert near(out.getpixel((20, 50)), RED) and near(out.getpixel((180, 50)), BLUE)


def test_same_pixels_with_different_exif_rotation_hash_identically() -> None:
    upright = normalise_image(encode(halves(), "PNG"), limits=LIMITS)
    sideways = normalise_image(rotated_with_exif(halves(), "PNG"), limits=LIMITS)
    assert sideways.sha256 == upright.sha256
