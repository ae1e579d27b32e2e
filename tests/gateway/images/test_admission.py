"""gateway.images.admission: where normalisation runs (inline for small images, a worker thread otherwise)."""

from __future__ import annotations

import io
import threading
import zlib

import pytest
from gateway.errors import ImageInputError
from gateway.images import normalise as images
from gateway.images.admission import INLINE_MAX_PIXELS, ImageAdmitter
from gateway.images.fetch import FetchPolicy, ImageFetcher
from gateway.images.normalise import ImageLimits, declared_pixels
from PIL import Image


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def admitter():  # type: ignore[no-untyped-def]
    fetcher = ImageFetcher(FetchPolicy())
    yield ImageAdmitter(limits=ImageLimits(), max_images=4, fetcher=fetcher)
    await fetcher.aclose()


@pytest.fixture
def normalising_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each normalise_image call ran on."""
    seen: list[str] = []
    real = images.normalise_image

    def spy(raw: bytes, *, limits: ImageLimits) -> images.NormalisedImage:
        seen.append(threading.current_thread().name)
        return real(raw, limits=limits)

    monkeypatch.setattr("gateway.images.admission.normalise_image", spy)
    return seen


def test_declared_pixels_reads_the_header_only() -> None:
    assert declared_pixels(png((48, 64))) == 48 * 64
    assert declared_pixels(b"not an image") is None


async def test_small_images_normalise_on_the_event_loop_thread(
    admitter: ImageAdmitter, normalising_threads: list[str]
) -> None:
    image = await admitter.admit_bytes(png((48, 64)))
    assert (image.width, image.height) == (48, 64)
    assert normalising_threads == [threading.current_thread().name]


async def test_larger_images_normalise_in_a_worker_thread(
    admitter: ImageAdmitter, normalising_threads: list[str]
) -> None:
    side = int(INLINE_MAX_PIXELS**0.5) + 1
    await admitter.admit_bytes(png((side, side)))
    assert normalising_threads and normalising_threads[0] != threading.current_thread().name


async def test_a_tiny_file_declaring_a_huge_canvas_is_not_decoded_on_the_event_loop(
    admitter: ImageAdmitter, normalising_threads: list[str]
) -> None:
    # 4000x4000 of one colour compresses to a few KB: the byte size alone would say "small".
    raw = png((4000, 4000))
    assert len(raw) < 64 * 1024
    await admitter.admit_bytes(raw)
    assert normalising_threads[0] != threading.current_thread().name


async def test_bad_bytes_still_get_the_clear_error(admitter: ImageAdmitter) -> None:
    with pytest.raises(ImageInputError, match="not a recognised image format"):
        await admitter.admit_bytes(zlib.compress(b"hello"))
