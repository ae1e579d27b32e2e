"""gateway.answer.job: one request's state; captions start absent and the metadata is shared."""

from __future__ import annotations

from gateway.answer.job import Job
from gateway.answer.route_choice import RouteDecision
from gateway.schemas import FlashSightMeta, GatewayChatRequest


def test_a_job_starts_without_captions_and_holds_the_metadata_it_was_given() -> None:
    request = GatewayChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    meta = FlashSightMeta(route="cascade", route_reason="no_image")
    job = Job(request, [], RouteDecision("cascade", "no_image"), "req-1", 0.0, meta)
    assert job.captions is None and job.meta is meta and job.decision.route == "cascade"
