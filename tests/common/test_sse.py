"""SSE decoding: JSON object events until [DONE]; anything else is the upstream's protocol error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from flashsight_common.sse import SSEProtocolError, iter_events


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_events_are_decoded_until_done() -> None:
    lines = _lines(
        ": keep-alive\n", 'data: {"a": 1}\n', "\n", "event: x\n", 'data: {"b":\n', "data: 2}\n", "\n"
    )
    done = _lines('data: {"a": 1}\n', "\n", "data: [DONE]\n", "\n", 'data: {"never": 1}\n', "\n")
    assert [e async for e in iter_events(lines)] == [{"a": 1}, {"b": 2}]
    assert [e async for e in iter_events(done)] == [{"a": 1}]


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", '"text"', "null"])
async def test_a_payload_that_is_not_a_json_object_is_refused(payload: str) -> None:
    for ending in (["\n"], []):  # framed by a blank line, or cut off at the end of the stream
        with pytest.raises(SSEProtocolError):
            _ = [e async for e in iter_events(_lines(f"data: {payload}\n", *ending))]
