"""One chat request on its way through the request service: what it has learnt so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.answer.captioning import Captions
from gateway.answer.route_choice import RouteDecision
from gateway.images.normalise import NormalisedImage
from gateway.schemas import FlashSightMeta, GatewayChatRequest


@dataclass
class Job:
    """The admitted request (images normalised), its route, its captions and its metadata so far."""

    request: GatewayChatRequest
    images: list[NormalisedImage]
    decision: RouteDecision
    request_id: str
    started: float
    """``time.perf_counter()`` when the request service took the request."""
    meta: FlashSightMeta
    captions: Captions | None = field(default=None)
