"""One chat request on its way through the pipeline, and the upstream bodies it turns into."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.answer.captioning import Captions
from gateway.images.normalise import NormalisedImage
from gateway.answer.prompts import reasoner_messages
from gateway.answer.route_choice import RouteDecision
from gateway.schemas import FlashSightMeta, GatewayChatRequest


def elapsed_ms(since: float) -> float:
    """Milliseconds since ``since`` (a ``time.perf_counter()`` value), rounded for humans."""
    return round((time.perf_counter() - since) * 1000, 1)


@dataclass
class Job:
    """The admitted request (images normalised), its route, its captions and its metadata so far."""

    request: GatewayChatRequest
    images: list[NormalisedImage]
    decision: RouteDecision
    request_id: str
    started: float
    meta: FlashSightMeta
    captions: Captions | None = field(default=None)

    def vision_body(self, model_id: str) -> dict[str, Any]:
        """The caller's conversation (normalised images) and sampling, for the vision model."""
        messages = [m.model_dump(exclude_none=True) for m in self.request.messages]
        return {"model": model_id, "messages": messages, **self.request.sampling()}

    def reasoner_body(self, model_id: str) -> dict[str, Any]:
        """Captions + the conversation as text + the caller's sampling, for the reasoner."""
        captions = self.captions.texts if self.captions else []
        return {
            "model": model_id,
            "messages": reasoner_messages(self.request.messages, captions),
            **self.request.sampling(),
        }

    def finish_meta(self) -> FlashSightMeta:
        """The metadata with the total time filled in."""
        self.meta.timings_ms.total = elapsed_ms(self.started)
        return self.meta
