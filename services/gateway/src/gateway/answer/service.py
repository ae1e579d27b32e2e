"""The gateway's request pipeline: admit → route → (direct | caption → reason) → degrade → answer.

:meth:`Pipeline.prepare` does everything that can still fail with a plain HTTP error
(bad input 4xx, vision down 503): admission, the route choice, the captions.
:meth:`Pipeline.complete` and :meth:`Pipeline.stream` then answer, from the reasoner
on the cascade route, falling back to vision (marked degraded) when it cannot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.telemetry.access_log import note_answer
from gateway.images.admission import ImageAdmitter
from gateway.answer.captioning import Captioner
from gateway.answer.degradation import ReasonerGuard, degraded_reason, mark_degraded, with_notice
from gateway.errors import UpstreamError
from gateway.upstreams.guarded import GuardedUpstream
from gateway.answer.job import Job, elapsed_ms
from gateway.answer.route_choice import KeywordTable, Route, RouteDecision, forced_route, pick_route
from gateway.schemas import FlashSightMeta, GatewayChatRequest
from gateway.answer.streaming import PrimedStream, prime, relay
from gateway.upstreams.client import UpstreamClient

logger = logging.getLogger(__name__)


class Pipeline:
    """Answers chat requests through vision and reasoner; one per app, built in the lifespan."""

    def __init__(
        self,
        *,
        admitter: ImageAdmitter,
        keywords: KeywordTable,
        captioner: Captioner,
        vision: UpstreamClient | GuardedUpstream,
        reasoner: ReasonerGuard,
    ) -> None:
        self.admitter = admitter
        self.keywords = keywords
        self.captioner = captioner
        self.vision = vision
        self.reasoner = reasoner

    async def prepare(
        self, request: GatewayChatRequest, *, request_id: str, header_route: str | None = None
    ) -> Job:
        """Admit the images, pick the route, caption (cascade). Raises the request's HTTP error."""
        started = time.perf_counter()
        forced = _forced(request, header_route)  # a bad model or route is refused before any image work
        admitted = await self.admitter.admit(request)
        question = _latest_user_text(admitted.request)
        decision = self._route(question, forced, has_images=bool(admitted.images))
        meta = _routed_meta(
            decision,
            request_id,
            images=[image.sha256 for image in admitted.images],
            safety=admitted.safety,
        )
        meta.timings_ms.admission = elapsed_ms(started)
        note_answer(meta, prompt=question)  # the access line and metrics read it when the request ends
        job = Job(admitted.request, admitted.images, decision, request_id, started, meta)
        if decision.route == "cascade" and job.images:
            job.captions = await self.captioner.caption(job.images, request_id=request_id)
            meta.caption_cache = job.captions.cache
            meta.models.vision = job.captions.vision_model
            meta.timings_ms.caption = round(job.captions.elapsed_ms, 1)
        return job

    def route_only(
        self, request: GatewayChatRequest, *, request_id: str, header_route: str | None = None
    ) -> FlashSightMeta:
        """The metadata of a request no model will answer (the holding reply).

        The route is decided as :meth:`prepare` decides it (a bad model or route is still
        refused), but from the image parts' presence: no image is fetched or decoded.
        """
        has_images = any(m.image_urls() for m in request.messages)
        decision = self._route(
            _latest_user_text(request), _forced(request, header_route), has_images=has_images
        )
        return _routed_meta(decision, request_id)

    def _route(self, question: str, forced: Route | None, *, has_images: bool) -> RouteDecision:
        return pick_route(question, forced=forced, has_images=has_images, table=self.keywords)

    # --- non-streamed ---------------------------------------------------------------------

    async def complete(self, job: Job) -> dict[str, Any]:
        """The ``chat.completion`` dict with its ``flashsight`` object."""
        if job.decision.route == "direct":
            answer = await self._ask_vision(job)
        else:
            try:
                answer = await self._ask_reasoner(job)
            except UpstreamError as exc:
                answer = await self._degrade_to_vision(job, exc)
        return {**answer, "flashsight": job.finish_meta().model_dump()}

    async def _ask_vision(self, job: Job) -> dict[str, Any]:
        started = time.perf_counter()
        body = job.vision_body(await self.vision.model_id())
        try:
            answer = await self.vision.complete(body, request_id=job.request_id)
        finally:
            job.meta.timings_ms.vision = elapsed_ms(started)
        job.meta.models.vision = answer.get("model")
        return answer

    async def _ask_reasoner(self, job: Job) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            body = job.reasoner_body(await self.reasoner.model_id())
            answer = await self.reasoner.complete(body, request_id=job.request_id)
        finally:
            job.meta.timings_ms.reasoner = elapsed_ms(started)
        job.meta.models.reasoner = answer.get("model")
        return answer

    async def _degrade_to_vision(self, job: Job, exc: UpstreamError) -> dict[str, Any]:
        logger.warning("reasoner failed (request %s): %s; answering from vision", job.request_id, exc.message)
        mark_degraded(job.meta, degraded_reason(exc))
        answer = await self._ask_vision(job)
        choice = answer["choices"][0]
        message = {**choice.get("message", {})}
        message["content"] = with_notice(message.get("content"))
        return {**answer, "choices": [{**choice, "message": message}, *answer["choices"][1:]]}

    # --- streamed -------------------------------------------------------------------------------

    async def stream(self, job: Job) -> AsyncIterator[bytes]:
        """The SSE byte stream; the source is primed first, so vision down is still a 503 here."""
        if job.decision.route == "direct":
            return relay(job, await self._open_vision(job), answered_by="vision")
        try:
            source = await self._open_reasoner(job)
        except UpstreamError as exc:
            logger.warning(
                "reasoner failed before its first token (request %s): %s; streaming vision",
                job.request_id,
                exc.message,
            )
            mark_degraded(job.meta, degraded_reason(exc))
            return relay(job, await self._open_vision(job), answered_by="vision")
        job.meta.models.reasoner = source.model
        return relay(job, source, answered_by="reasoner", on_failure=self.reasoner.record_failure)

    async def _open_vision(self, job: Job) -> PrimedStream:
        started = time.perf_counter()
        body = job.vision_body(await self.vision.model_id())
        stream = await self.vision.open_stream(body, request_id=job.request_id)
        primed = await prime(stream, started=started)
        job.meta.models.vision = primed.model or job.meta.models.vision
        return primed

    async def _open_reasoner(self, job: Job) -> PrimedStream:
        started = time.perf_counter()
        try:
            body = job.reasoner_body(await self.reasoner.model_id())
            stream = await self.reasoner.open_stream(body, request_id=job.request_id)  # counts its failures
        except UpstreamError:
            job.meta.timings_ms.reasoner = elapsed_ms(started)
            raise
        try:
            primed = await prime(stream, started=started)
        except UpstreamError:
            self.reasoner.record_failure()
            job.meta.timings_ms.reasoner = elapsed_ms(started)
            raise
        self.reasoner.record_success()
        return primed


def _forced(request: GatewayChatRequest, header_route: str | None) -> Route | None:
    return forced_route(request.model, {**request.route_forces(), "X-FlashSight-Route header": header_route})


def _routed_meta(decision: RouteDecision, request_id: str, **extra: Any) -> FlashSightMeta:
    return FlashSightMeta(
        route=decision.route,
        route_reason=decision.reason,
        matched_keyword=decision.keyword,
        request_id=request_id,
        **extra,
    )


def _latest_user_text(request: GatewayChatRequest) -> str:
    return next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
