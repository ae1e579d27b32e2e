"""Overload steps: thresholds, what each does to the request, how it is reported."""

from __future__ import annotations

from gateway.answer.shedding import LoadShedder, ShedPolicy
from gateway.schemas import FlashSightMeta, GatewayChatRequest


def _request(**extra: object) -> GatewayChatRequest:
    return GatewayChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **extra})


def test_steps_start_above_each_threshold_and_zero_turns_one_off() -> None:
    shedder = LoadShedder(ShedPolicy(max_tokens_above=1, greedy_above=2, hold_above=0))
    assert shedder.enter() == []
    assert shedder.enter() == ["overload_max_tokens"]
    assert shedder.enter() == ["overload_max_tokens", "overload_greedy"]
    for _ in range(3):
        shedder.leave()
    assert shedder.in_flight == 0


def test_cost_cuts_cap_tokens_and_force_greedy() -> None:
    shedder = LoadShedder(ShedPolicy(max_tokens=64))
    shed = shedder.apply(
        _request(max_completion_tokens=500, temperature=0.9), ["overload_max_tokens", "overload_greedy"]
    )
    assert shed.max_tokens == 64 and shed.max_completion_tokens is None
    assert shed.temperature == 0.0 and shed.top_p == 1.0
    assert shedder.apply(_request(max_tokens=10), ["overload_max_tokens"]).max_tokens == 10


def test_marking_keeps_every_step_and_names_the_worst() -> None:
    meta = FlashSightMeta(route="direct", route_reason="default")
    meta.mark_shed(["overload_max_tokens", "overload_greedy"])
    assert meta.degraded and meta.degraded_reason == "overload_greedy"
    assert meta.load_shedding == ["overload_max_tokens", "overload_greedy"]
