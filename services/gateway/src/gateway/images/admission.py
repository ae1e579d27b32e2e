"""Image admission: every image of every message becomes a normalised ``data:`` URL.

``data:`` URLs are decoded, ``https://`` (and, if allowed, ``http://``) URLs are fetched
SSRF-safely by :class:`gateway.images.fetch.ImageFetcher`, and all of them go through
:func:`gateway.images.normalise.normalise_image` in a worker thread. Downstream services see
only the normalised ``data:`` URLs; the SHA-256 of each normalised image is its
caption-cache key. Errors of those modules are translated into the gateway's tree here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flashsight_common.schemas import ChatMessage, ImagePart, ImageURL

from gateway.errors import ImageFetchError, ImageInputError, TooManyImagesError
from gateway.images.fetch import FetchError, ImageFetcher
from gateway.images.memory import give_back_memory
from gateway.images.normalise import (
    ImageError,
    ImageLimits,
    ImageTooLargeError,
    NormalisedImage,
    declared_decoded_size,
    declared_pixels,
    decode_data_url,
    normalise_image,
)
from gateway.images.safety import SafetyFilter
from gateway.schemas import GatewayChatRequest

if TYPE_CHECKING:
    from gateway.config import ImageSettings

# Images this small normalise in well under a millisecond (0.23 ms for 48x64): the
# worker-thread hop and the GIL hand-back cost more than that, so they run inline.
# Anything bigger stays off the event loop. Measured: docs/performance.md.
INLINE_MAX_BYTES = 64 * 1024
INLINE_MAX_PIXELS = 128 * 128


@dataclass(frozen=True, slots=True)
class Admitted:
    """The request with its images replaced by normalised data URLs, and those images in order."""

    request: GatewayChatRequest
    images: list[NormalisedImage]
    safety: dict[str, Any] | None = None
    """The safety pre-filter's findings (None when it is off)."""


class ImageAdmitter:
    """Turns image URLs and uploaded bytes into :class:`NormalisedImage` within the limits."""

    def __init__(
        self,
        *,
        limits: ImageLimits,
        max_images: int,
        fetcher: ImageFetcher,
        safety: SafetyFilter | None = None,
        decoder: Executor | None = None,
        max_request_decoded_bytes: int | None = None,
    ) -> None:
        self.limits = limits
        self.decoder = decoder
        """Where large images are decoded: a small pool bounds how many are in memory at once."""
        self.max_request_decoded_bytes = max_request_decoded_bytes
        self.safety = safety
        self.max_images = max_images
        self.fetcher = fetcher
        # URL scheme → how to get the raw bytes; the error for any other scheme lists these.
        self._loaders: dict[str, Callable[[str], Awaitable[bytes]]] = {
            "data": self._decode,
            "https": self.fetcher.fetch,
            "http": self.fetcher.fetch,  # refused by the fetch policy unless allow_http_images
        }

    @classmethod
    def from_settings(
        cls,
        images: ImageSettings,
        *,
        fetcher: ImageFetcher,
        safety: SafetyFilter | None,
        decoder: Executor | None = None,
    ) -> ImageAdmitter:
        """Admission under ``GATEWAY_MAX_IMAGE_BYTES``, ``_MAX_PIXELS``, ``_MAX_SIDE``, ``_MAX_IMAGES_*``,
        ``_MAX_DECODED_BYTES_*``; large images decode on ``decoder`` (``GATEWAY_DECODE_WORKERS`` threads)."""
        limits = ImageLimits(
            max_image_bytes=images.max_image_bytes,
            max_pixels=images.max_pixels,
            max_side=images.max_side,
            max_decoded_bytes=images.max_decoded_bytes_per_image,
        )
        return cls(
            limits=limits,
            max_images=images.max_images_per_request,
            fetcher=fetcher,
            safety=safety,
            decoder=decoder,
            max_request_decoded_bytes=images.max_decoded_bytes_per_request,
        )

    async def admit(self, request: GatewayChatRequest) -> Admitted:
        """Normalise all images of all messages (concurrently) and swap in their data URLs."""
        located = [
            (m, p, part)
            for m, message in enumerate(request.messages)
            if isinstance(message.content, list)
            for p, part in enumerate(message.content)
            if isinstance(part, ImagePart)
        ]
        if len(located) > self.max_images:
            raise TooManyImagesError(
                f"the request has {len(located)} images; at most {self.max_images} are accepted per request",
                param="messages",
            )
        params = [f"messages.{m}.content.{p}.image_url" for m, p, _ in located]
        urls = [part.image_url.url for _, _, part in located]
        raws = await asyncio.gather(
            *(self.load_url(url, param=param) for url, param in zip(urls, params, strict=True))
        )
        self._check_request_budget(raws)  # from the headers: nothing decoded yet
        images = await asyncio.gather(
            *(self.admit_bytes(raw, param=param) for raw, param in zip(raws, params, strict=True))
        )
        replaced = {(m, p): image for (m, p, _), image in zip(located, images, strict=True)}
        messages = [_with_images(message, m, replaced) for m, message in enumerate(request.messages)]
        # Screened after normalising: the filter sees exactly the pixels the models would.
        safety = await self.safety.screen(images) if self.safety is not None and images else None
        return Admitted(request.model_copy(update={"messages": messages}), list(images), safety)

    def _check_request_budget(self, raws: list[bytes]) -> None:
        """Refuse, from the headers alone, images that would take too much memory decoded together."""
        if self.max_request_decoded_bytes is None or len(raws) < 2:
            return  # one image: its own per-image budget applies
        total = sum(declared_decoded_size(raw) or 0 for raw in raws)
        if total > self.max_request_decoded_bytes:
            raise ImageInputError(
                f"the request's {len(raws)} images take {total / 2**20:.1f} MB decoded together; at most "
                f"{self.max_request_decoded_bytes / 2**20:.1f} MB are accepted per request "
                "(send fewer, smaller or 8-bit images)",
                param="messages",
                code=ImageTooLargeError.code,
            )

    async def admit_url(self, url: str, *, param: str | None = None) -> NormalisedImage:
        """Load one image URL and normalise it."""
        return await self.admit_bytes(await self.load_url(url, param=param), param=param)

    async def load_url(self, url: str, *, param: str | None = None) -> bytes:
        """The raw bytes of one image URL (decoded ``data:``, or fetched), not yet checked as an image."""
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        loader = self._loaders.get(scheme)
        if loader is None:
            raise ImageInputError(
                f"image URL scheme {scheme or '(none)'!r} is not accepted; use a data:image/...;base64 URL "
                "or an https:// URL",
                param=param,
                code="invalid_image_url",
            )
        try:
            return await loader(url)
        except FetchError as exc:
            raise ImageFetchError(f"image URL refused: {exc.message}", param=param, code=exc.code) from exc
        except ImageError as exc:
            raise ImageInputError(exc.message, param=param, code=exc.code) from exc

    async def admit_bytes(self, raw: bytes, *, param: str | None = None) -> NormalisedImage:
        """Normalise uploaded bytes: small images inline, others in a worker thread (CPU-bound)."""
        try:
            if _is_small(raw):
                return normalise_image(raw, limits=self.limits)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.decoder, _normalise_and_trim, raw, self.limits)
        except ImageError as exc:
            raise ImageInputError(exc.message, param=param, code=exc.code) from exc

    async def admit_upload(self, raw: bytes, *, param: str | None = None) -> NormalisedImage:
        """One uploaded image, normalised and then screened by the safety filter, as :meth:`admit` does."""
        image = await self.admit_bytes(raw, param=param)
        if self.safety is not None:
            await self.safety.screen([image])  # reject mode raises: no model sees the image
        return image

    async def _decode(self, url: str) -> bytes:
        return decode_data_url(url, limits=self.limits)  # cheap next to normalising: stays inline


def _normalise_and_trim(raw: bytes, limits: ImageLimits) -> NormalisedImage:
    """In the decode pool: normalise, then hand a large decode's memory back to the OS."""
    try:
        return normalise_image(raw, limits=limits)
    finally:
        give_back_memory(declared_decoded_size(raw) or 0)


def _is_small(raw: bytes) -> bool:
    if len(raw) > INLINE_MAX_BYTES:
        return False
    pixels = declared_pixels(raw)  # a few KB can still declare a huge canvas
    return pixels is not None and pixels <= INLINE_MAX_PIXELS


def _with_images(
    message: ChatMessage, m: int, replaced: dict[tuple[int, int], NormalisedImage]
) -> ChatMessage:
    if not isinstance(message.content, list):
        return message
    parts = [
        ImagePart(image_url=ImageURL(url=replaced[(m, p)].data_url(), detail=part.image_url.detail))
        if isinstance(part, ImagePart)
        else part
        for p, part in enumerate(message.content)
    ]
    return message.model_copy(update={"content": parts})
