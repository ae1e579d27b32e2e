"""A tool-calling answer in OpenAI's shape: ``tool_calls`` on the message, or streamed deltas.

Streamed, each call is two deltas, as OpenAI sends them: first ``index``, ``id``, ``type``
and ``function.name`` with empty ``arguments``, then ``index`` with the ``arguments``
(here the whole JSON text in one fragment: a call is released once it is complete and
read back, so a half-written call is never shown). The answer's ``finish_reason`` is
``tool_calls`` when it made at least one call and ended normally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flashsight_common.schemas import Delta
from flashsight_common.toolcalls import (
    FunctionCall,
    FunctionCallDelta,
    ToolCall,
    ToolCallDelta,
    new_tool_call_id,
)

from modelserver.tools.formats import ParsedCall, ToolFormat
from modelserver.tools.parser import ContentPiece, Piece, ToolCallParser
from modelserver.tools.request import ToolRequest


def final_finish_reason(finish_reason: str, *, calls: int) -> str:
    """``tool_calls`` for an answer that called and stopped on its own; else unchanged."""
    return "tool_calls" if calls and finish_reason == "stop" else finish_reason


@dataclass(slots=True)
class ToolAnswer:
    """A whole answer split into ``content`` and ``tool_calls``."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)


def split_answer(text: str, fmt: ToolFormat, request: ToolRequest) -> ToolAnswer:
    """Read a whole (non-streamed) answer."""
    parser = ToolCallParser(fmt, request)
    pieces = parser.feed(text) + parser.finish()
    content = "".join(p.text for p in pieces if isinstance(p, ContentPiece))
    calls = [_tool_call(p) for p in pieces if isinstance(p, ParsedCall)]
    return ToolAnswer(content=content or (None if calls else ""), tool_calls=calls)


class ToolDeltaWriter:
    """Turns one streamed answer's text into content and tool-call deltas."""

    def __init__(self, fmt: ToolFormat, request: ToolRequest) -> None:
        self._parser = ToolCallParser(fmt, request)

    @property
    def calls(self) -> int:
        return self._parser.calls

    def feed(self, text: str) -> list[Delta]:
        """Deltas for newly decoded ``text`` (none while a call is being written)."""
        return self._deltas(self._parser.feed(text))

    def finish(self) -> list[Delta]:
        """Deltas for what the end of the answer releases."""
        return self._deltas(self._parser.finish())

    def _deltas(self, pieces: list[Piece]) -> list[Delta]:
        deltas: list[Delta] = []
        index = self._parser.calls - sum(isinstance(p, ParsedCall) for p in pieces)
        for piece in pieces:
            if isinstance(piece, ContentPiece):
                deltas.append(Delta(content=piece.text))
                continue
            head = ToolCallDelta(
                index=index,
                id=new_tool_call_id(),
                type="function",
                function=FunctionCallDelta(name=piece.name, arguments=""),
            )
            body = ToolCallDelta(index=index, function=FunctionCallDelta(arguments=piece.arguments))
            deltas += [Delta(tool_calls=[head]), Delta(tool_calls=[body])]
            index += 1
        return deltas


def _tool_call(call: ParsedCall) -> ToolCall:
    return ToolCall(id=new_tool_call_id(), function=FunctionCall(name=call.name, arguments=call.arguments))
