"""The request service: the one path every chat-shaped request takes, read top to bottom.

:meth:`AnswerService.answer` owns the steps; each returns to it rather than calling onward:

1. **count** the request in flight and learn which overload steps apply (``shedding``);
2. **refuse cheaply**: too much text, an unknown model or route (before any image work);
3. **hold** under overload: the holding reply, no model called (``responses``);
4. **admit** the images (``gateway.images``) and **choose the route** (``route_choice``;
   a request with tools: ``tools``, by which stage can call); then **look up** a
   deterministic request in the exact answer cache (``gateway.store.answer_cache``): a hit
   is replayed (``responses``), no model called;
5. **caption** the images on the cascade route (``captioning``, through the cache);
6. **answer** from vision (direct) or the reasoner (cascade), each read for the OpenAI
   fields only (``upstream_answers``); a reasoner that cannot answer is replaced by vision,
   marked degraded (``degradation``), unless a tool call is required (``tools``: a 503);
   streamed answers are primed and relayed (``streaming``); a whole, undegraded answer is
   stored in the answer cache;
7. **build the response** (``responses``) with the ``flashsight`` metadata, which only
   changes through :class:`~gateway.schemas.FlashSightMeta`'s own methods.

Everything up to the first streamed byte runs under the request deadline (504). Steps 4-6
raise the request's HTTP error (bad input 4xx, vision down 503). ``/v1/chat/completions``
and the seed endpoints both call :meth:`AnswerService.answer`; ``/caption`` calls
:meth:`AnswerService.caption_upload`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.answer import responses
from gateway.answer.captioning import Captioner, Captions
from gateway.answer.degradation import degraded_reason
from gateway.answer.job import Job
from gateway.answer.languages import evidence_notice, gate_evidence, gate_language, language_notice
from gateway.answer.prompt_budget import check_prompt_cost
from gateway.answer.repetition import cut_loop, said_in, stop_loops
from gateway.answer.route_choice import KeywordTable, Route, RouteDecision, forced_route, pick_route
from gateway.answer.shedding import HOLDING_REPLY, LoadShedder, ShedStep
from gateway.answer.streaming import PrimedStream, prime, relay
from gateway.answer.tools import (
    involves_tools,
    may_call,
    must_call,
    refuse_text_instead,
    route_tools,
    tool_texts,
)
from gateway.answer.upstream_answers import Answer, read_completion
from gateway.answer.upstream_bodies import reasoner_body, vision_body
from gateway.errors import RequestDeadlineError, UpstreamError
from gateway.images.admission import ImageAdmitter
from gateway.schemas import FlashSightMeta, GatewayChatRequest
from gateway.store.answer_cache import BYPASS, AnswerCache, CachedAnswer, CachePlan, storable
from gateway.telemetry.access_log import note_answer
from gateway.upstreams.guarded import GuardedUpstream, ReasonerGuard

if TYPE_CHECKING:
    from gateway.config import AnswerSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answered:
    """What :meth:`AnswerService.answer` produced: a completion, or SSE events owning an in-flight slot."""

    meta: FlashSightMeta
    completion: dict[str, Any] | None = None
    events: AsyncIterator[bytes] | None = None
    """Set for a streamed answer; the request leaves the in-flight count when it ends."""


class AnswerService:
    """Answers chat requests through vision and reasoner; one per app, built in the lifespan."""

    def __init__(
        self,
        *,
        admitter: ImageAdmitter,
        keywords: KeywordTable,
        captioner: Captioner,
        vision: GuardedUpstream,
        reasoner: ReasonerGuard,
        shedder: LoadShedder,
        deadline_s: float,
        max_text_chars: int,
        answer_cache: AnswerCache | None = None,
        reasoner_languages: tuple[str, ...] = ("*",),
    ) -> None:
        self.admitter = admitter
        self.keywords = keywords
        self.captioner = captioner
        self.vision = vision
        self.reasoner = reasoner
        self.shedder = shedder
        self.deadline_s = deadline_s
        self.max_text_chars = max_text_chars
        self.answer_cache = answer_cache
        self.reasoner_languages = reasoner_languages

    @classmethod
    def from_settings(
        cls,
        answer: AnswerSettings,
        *,
        admitter: ImageAdmitter,
        keywords: KeywordTable,
        captioner: Captioner,
        vision: GuardedUpstream,
        reasoner: ReasonerGuard,
        shedder: LoadShedder,
        answer_cache: AnswerCache | None = None,
    ) -> AnswerService:
        """The service under ``GATEWAY_REQUEST_DEADLINE_S`` and ``GATEWAY_MAX_TEXT_CHARS``."""
        return cls(
            admitter=admitter,
            keywords=keywords,
            captioner=captioner,
            vision=vision,
            reasoner=reasoner,
            shedder=shedder,
            deadline_s=answer.request_deadline_s,
            max_text_chars=answer.max_text_chars,
            answer_cache=answer_cache,
            reasoner_languages=answer.reasoner_languages,
        )

    # --- the path of one request ------------------------------------------------------------

    async def answer(
        self,
        body: GatewayChatRequest,
        *,
        request_id: str,
        header_route: str | None = None,
        cache_scope: str | None = None,
        cache_control: str | None = None,
    ) -> Answered:
        """The answer to a parsed chat request (JSON or SSE); raises the request's HTTP error.

        ``header_route`` is the ``X-FlashSight-Route`` header as sent (any case, padded).
        ``cache_scope`` is the caller identity the auth middleware set (None: the answer
        cache is bypassed) and ``cache_control`` the ``Cache-Control`` header.
        """
        started = time.perf_counter()
        steps = self.shedder.enter()  # 1. count
        handed_to_stream = False
        try:
            self._check_text_size(body)  # 2. refuse cheaply
            forced = _forced(body, header_route)
            if HOLDING_REPLY in steps:  # 3. hold
                answered = await self._hold(body, forced, steps, request_id=request_id)
                handed_to_stream = answered.events is not None
                return answered
            plan = self._plan(body, cache_scope, cache_control)  # the caller's fields, before shedding
            body = self.shedder.apply(body, steps)
            async with _deadline(self.deadline_s):
                # 4. admit the images, choose the route, look the answer up
                job = await self._admit(body, forced, request_id=request_id, started=started)
                cached = await self._look_up(job, plan)
                if cached is not None:
                    answered = self._replay(job, cached)
                    handed_to_stream = answered.events is not None
                    return answered
                if job.decision.route == "cascade" and job.images:
                    job.captions = await self._caption(job)  # 5. caption
                    self._gate_evidence(job)
                job.meta.mark_shed(steps)
                if body.stream:  # 6. answer (primed: vision down is still a 503 here)
                    events = await self._stream(job)
                else:
                    answer = await self._complete(job)
                    await self._store(job, answer)
            if body.stream:
                handed_to_stream = True
                return Answered(job.meta, events=self.shedder.guard_stream(events))
            return Answered(job.meta, completion=responses.completion(answer, job.meta))  # 7. respond
        finally:
            if not handed_to_stream:
                self.shedder.leave()

    async def caption_upload(self, raw: bytes, *, param: str, request_id: str) -> Captions:
        """``/caption``: one uploaded image's caption, counted in flight, never shed (see seed_endpoints)."""
        self.shedder.enter()
        try:
            image = await self.admitter.admit_upload(raw, param=param)
            return await self.captioner.caption([image], request_id=request_id)
        finally:
            self.shedder.leave()

    # --- the steps ---------------------------------------------------------------------------

    def _check_text_size(self, request: GatewayChatRequest) -> None:
        """400 when the prompt (text, tools, template markers) is over the cap (answer.prompt_budget)."""
        texts = [m.text() for m in request.messages] + tool_texts(request)
        check_prompt_cost(texts, max_chars=self.max_text_chars)

    async def _hold(
        self, body: GatewayChatRequest, forced: Route | None, steps: list[ShedStep], *, request_id: str
    ) -> Answered:
        """The holding reply: routed from the image parts' presence, no image fetched, no model called."""
        refuse_text_instead(body, because="the gateway is overloaded (it answers with a holding reply)")
        has_images = any(m.image_urls() for m in body.messages)
        question = _latest_user_text(body)
        decision = await self._route(body, question, forced, has_images=has_images)
        meta = self._routed_meta(decision, question, request_id)
        meta.mark_shed(steps)
        text = self.shedder.policy.holding_reply
        if body.stream:
            return Answered(
                meta, events=responses.holding_stream(body.model, meta, text, on_done=self.shedder.leave)
            )
        return Answered(meta, completion=responses.holding_completion(body.model, meta, text))

    async def _admit(
        self, body: GatewayChatRequest, forced: Route | None, *, request_id: str, started: float
    ) -> Job:
        """Normalise the images, choose the route, open the metadata (the access line reads it)."""
        admitted = await self.admitter.admit(body)
        question = _latest_user_text(admitted.request)
        decision = await self._route(admitted.request, question, forced, has_images=bool(admitted.images))
        meta = self._routed_meta(
            decision,
            question,
            request_id,
            images=[image.sha256 for image in admitted.images],
            safety=admitted.safety,
        )
        meta.record_stage("admission", started=started)
        note_answer(meta, prompt=question)  # the access line and metrics read it when the request ends
        return Job(admitted.request, admitted.images, decision, request_id, started, meta)

    def _plan(self, body: GatewayChatRequest, scope: str | None, cache_control: str | None) -> CachePlan:
        if self.answer_cache is None:
            return BYPASS
        return self.answer_cache.plan(body, scope=scope, cache_control=cache_control)

    async def _look_up(self, job: Job, plan: CachePlan) -> CachedAnswer | None:
        """The cached answer, if any; records hit / miss / bypass / unavailable, keeps the key to store."""
        if self.answer_cache is None or (plan.status == "bypass" and not plan.store):
            job.meta.record_answer_cache("bypass")
            return None
        key = self.answer_cache.key(plan, job.request, job.images, job.decision.route)
        job.answer_key = key if plan.store else None
        if not plan.lookup:
            job.meta.record_answer_cache("bypass")
            return None
        found = await self.answer_cache.get(key)
        if found == "unavailable":
            job.meta.record_answer_cache("unavailable")
            return None
        if found is None:
            job.meta.record_answer_cache("miss")
            return None
        job.meta.record_answer_cache("hit", found.models)
        return found

    def _replay(self, job: Job, cached: CachedAnswer) -> Answered:
        """A hit as the caller asked for it: JSON, or SSE framed like a live stream."""
        meta = job.meta.finish(started=job.started)
        if job.request.stream:
            events = responses.cached_stream(meta, cached, include_usage=job.request.include_usage())
            return Answered(meta, events=self.shedder.guard_stream(events))
        return Answered(meta, completion=responses.cached_completion(meta, cached))

    async def _store(self, job: Job, answer: Answer | CachedAnswer) -> None:
        """Keep a whole, undegraded answer for the next identical request (never a shed one)."""
        if self.answer_cache is None or job.answer_key is None or job.meta.degraded:
            return
        entry = answer if isinstance(answer, CachedAnswer) else _cached(answer, job.meta)
        if storable(entry):
            await self.answer_cache.put(job.answer_key, entry)

    async def _route(
        self, request: GatewayChatRequest, question: str, forced: Route | None, *, has_images: bool
    ) -> RouteDecision:
        """A tools request: where a model can call; else the keyword/forced route, gated by language."""
        if involves_tools(request):
            vision_calls = has_images and await self.vision.calls_tools()
            return route_tools(forced, has_images=has_images, vision_calls=vision_calls)
        decision = pick_route(question, forced=forced, has_images=has_images, table=self.keywords)
        return gate_language(decision, question, self.reasoner_languages)

    def _routed_meta(
        self, decision: RouteDecision, question: str, request_id: str, **extra: Any
    ) -> FlashSightMeta:
        meta = _routed_meta(decision, request_id, **extra)
        if decision.reason == "reasoner_language":
            meta.mark_language_gated(language_notice(question, self.reasoner_languages))
        return meta

    def _gate_evidence(self, job: Job) -> None:
        """Vision answers instead when the reasoner cannot read the language of the image's text."""
        texts = _caption_texts(job)
        decision = gate_evidence(job.decision, texts, self.reasoner_languages)
        if decision is not job.decision:
            job.decision = decision
            job.meta.mark_language_gated(evidence_notice(texts, self.reasoner_languages))
            # A hit would skip the captions that decided this, and replay without the notice.
            job.answer_key = None

    async def _caption(self, job: Job) -> Captions:
        captions = await self.captioner.caption(job.images, request_id=job.request_id)
        job.meta.record_captions(
            cache=captions.cache, vision_model=captions.vision_model, elapsed_ms=captions.elapsed_ms
        )
        return captions

    async def _complete(self, job: Job) -> Answer:
        """The upstream answer: vision's (direct), or the reasoner's with vision as the fallback."""
        if job.decision.route == "direct":
            answer = await self._ask_vision(job)
        else:
            try:
                answer = await self._ask_reasoner(job)
            except UpstreamError as exc:
                logger.warning(
                    "reasoner failed (request %s): %s; answering from vision", job.request_id, exc.message
                )
                _refuse_text_for_calls(job, exc)
                job.meta.mark_degraded(degraded_reason(exc))
                answer = await self._ask_vision(job, with_tools=False)
        job.meta.finish(started=job.started)
        return answer

    async def _stream(self, job: Job) -> AsyncIterator[bytes]:
        """The SSE byte stream; the source is primed first, so vision down is still a 503 here."""
        if job.decision.route == "direct":
            return relay(job, await self._open_vision(job), answered_by="vision", on_answer=self._stored(job))
        try:
            source = await self._open_reasoner(job)
        except UpstreamError as exc:
            logger.warning(
                "reasoner failed before its first token (request %s): %s; streaming vision",
                job.request_id,
                exc.message,
            )
            _refuse_text_for_calls(job, exc)
            job.meta.mark_degraded(degraded_reason(exc))
            return relay(job, await self._open_vision(job, with_tools=False), answered_by="vision")
        job.meta.record_model("reasoner", source.model)
        return relay(
            job,
            source,
            answered_by="reasoner",
            on_failure=self.reasoner.record_failure,
            on_answer=self._stored(job),
        )

    def _stored(self, job: Job) -> Callable[[CachedAnswer], Awaitable[None]]:
        async def store(answer: CachedAnswer) -> None:
            await self._store(job, answer)

        return store

    # --- the upstream calls --------------------------------------------------------------------

    async def _ask_vision(self, job: Job, *, with_tools: bool = True) -> Answer:
        started = time.perf_counter()
        model_id = await self.vision.model_id()
        body = vision_body(job.request, model_id, with_tools=with_tools)
        try:
            answer = read_completion(await self.vision.complete(body, request_id=job.request_id))
        finally:
            job.meta.record_stage("vision", started=started)
        job.meta.record_model("vision", answer.model)
        return answer

    async def _ask_reasoner(self, job: Job) -> Answer:
        started = time.perf_counter()
        try:
            body = reasoner_body(job.request, _caption_texts(job), await self.reasoner.model_id())
            raw = await self.reasoner.complete(body, request_id=job.request_id)
            # A small model that loops is stopped, unless the answer may hold calls (answer.tools).
            answer = read_completion(raw if may_call(job.request) else cut_loop(raw))
        finally:
            job.meta.record_stage("reasoner", started=started)
        job.meta.record_model("reasoner", answer.model)
        return answer

    async def _open_vision(self, job: Job, *, with_tools: bool = True) -> PrimedStream:
        started = time.perf_counter()
        body = vision_body(job.request, await self.vision.model_id(), with_tools=with_tools)
        stream = await self.vision.open_stream(body, request_id=job.request_id)
        primed = await prime(stream, started=started)
        job.meta.record_model("vision", primed.model)
        return primed

    async def _open_reasoner(self, job: Job) -> PrimedStream:
        started = time.perf_counter()
        try:
            body = reasoner_body(job.request, _caption_texts(job), await self.reasoner.model_id())
            stream = await self.reasoner.open_stream(  # counts its failures
                body, request_id=job.request_id, can_fall_back=not must_call(job.request)
            )
        except UpstreamError:
            job.meta.record_stage("reasoner", started=started)
            raise
        try:
            primed = await prime(stream, started=started)
        except UpstreamError:
            self.reasoner.record_failure()
            job.meta.record_stage("reasoner", started=started)
            raise
        self.reasoner.record_success()
        if not may_call(job.request):  # a looping small model stops (not inside calls: answer.tools)
            primed.rest = stop_loops(primed.rest, said=said_in(primed.head))
        return primed


@asynccontextmanager
async def _deadline(seconds: float) -> AsyncIterator[None]:
    """``asyncio.timeout(seconds)`` whose expiry is the 504 ``request_deadline_exceeded``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise RequestDeadlineError(
            f"the request did not complete within the gateway's {seconds:g}s deadline "
            "(GATEWAY_REQUEST_DEADLINE_S); retry, or ask for fewer tokens"
        ) from exc


def _forced(request: GatewayChatRequest, header_route: str | None) -> Route | None:
    header = header_route.strip().lower() if header_route else None
    return forced_route(request.model, {**request.route_forces(), "X-FlashSight-Route header": header})


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


def _caption_texts(job: Job) -> list[str]:
    return job.captions.texts if job.captions else []


def _refuse_text_for_calls(job: Job, failure: UpstreamError) -> None:
    # A request that must call gets a 503, not vision's text (gateway.answer.tools).
    because = f"the reasoner, which calls the tools, cannot answer now ({failure.message})"
    refuse_text_instead(job.request, because=because, retry_after=failure.retry_after)


def _cached(answer: Answer, meta: FlashSightMeta) -> CachedAnswer:
    return CachedAnswer(
        content=answer.content,
        finish_reason=answer.finish_reason,
        model=answer.model,
        reasoning_content=answer.reasoning_content,
        usage=answer.usage,
        tool_calls=answer.tool_calls,
        models=meta.models.model_dump(),
    )
