"""Overload: shed cost before shedding requests, each step marked degraded.

The gateway counts its in-flight chat requests (a stream counts until its last byte).
Above each configured threshold one more step applies to new requests:

==========================  =============================================================
``overload_max_tokens``     ``max_tokens`` capped at ``shed_max_tokens`` (shorter answers)
``overload_greedy``         temperature 0, top_p 1 (no sampling work, shortest decoding)
``overload_holding_reply``  opt-in: no model is called; the configured holding reply is
                            answered at once (still a 200, still OpenAI-shaped)
==========================  =============================================================

Each applied step is listed in ``flashsight.load_shedding`` and the answer is marked
``degraded`` (``degraded_reason`` = the most severe step, unless the reasoner failing
gave a more specific reason: ``FlashSightMeta.mark_shed``). A threshold of 0 turns its
step off. The holding reply itself is built by :mod:`gateway.answer.responses`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.schemas import DegradedReason, GatewayChatRequest

if TYPE_CHECKING:
    from gateway.config import ShedSettings

ShedStep = DegradedReason
HOLDING_REPLY: ShedStep = "overload_holding_reply"


@dataclass(frozen=True, slots=True)
class ShedPolicy:
    """Thresholds (in-flight requests; 0 = off) and what the steps do."""

    max_tokens_above: int = 32
    max_tokens: int = 256
    greedy_above: int = 64
    hold_above: int = 0
    holding_reply: str = "The service is busy; please retry in a moment."


class LoadShedder:
    """The in-flight counter and the steps it implies; one per app."""

    def __init__(self, policy: ShedPolicy) -> None:
        self.policy = policy
        self.in_flight = 0

    @classmethod
    def from_settings(cls, shedding: ShedSettings) -> LoadShedder:
        """The shedder of the ``GATEWAY_SHED_*`` thresholds and ``GATEWAY_HOLDING_REPLY``."""
        return cls(
            ShedPolicy(
                max_tokens_above=shedding.shed_max_tokens_above,
                max_tokens=shedding.shed_max_tokens,
                greedy_above=shedding.shed_greedy_above,
                hold_above=shedding.shed_hold_above,
                holding_reply=shedding.holding_reply,
            )
        )

    def enter(self) -> list[ShedStep]:
        """Count a new request in; the shedding steps that apply to it (mildest first)."""
        self.in_flight += 1
        thresholds: tuple[tuple[int, ShedStep], ...] = (
            (self.policy.max_tokens_above, "overload_max_tokens"),
            (self.policy.greedy_above, "overload_greedy"),
            (self.policy.hold_above, "overload_holding_reply"),
        )
        return [step for above, step in thresholds if above and self.in_flight > above]

    def leave(self) -> None:
        self.in_flight -= 1

    def apply(self, request: GatewayChatRequest, steps: list[ShedStep]) -> GatewayChatRequest:
        """The request with the cost-cutting steps applied (the holding reply is not one)."""
        update: dict[str, Any] = {}
        if "overload_max_tokens" in steps:
            ceiling = self.policy.max_tokens
            update["max_tokens"] = min(request.token_limit(ceiling), ceiling)
            update["max_completion_tokens"] = None
        if "overload_greedy" in steps:
            update["temperature"] = 0.0
            update["top_p"] = 1.0
        return request.model_copy(update=update) if update else request

    async def guard_stream(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``events``, leaving the in-flight count only when the stream is done."""
        try:
            async for event in events:
                yield event
        finally:
            self.leave()
