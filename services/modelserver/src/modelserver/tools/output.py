"""A tool-calling answer in OpenAI's shape: ``tool_calls`` on the message, or streamed deltas.

Streamed, a call goes out as the model writes it, as OpenAI and vLLM stream calls: first
a delta with ``index``, ``id``, ``type`` and ``function.name`` (empty ``arguments``) as soon
as the name is written, then deltas with ``index`` and the next ``arguments`` fragment as
the arguments are decoded (one per decoded piece of text); the fragments concatenate to
exactly the ``arguments`` the same answer carries unstreamed. A call held whole by the
parser (text not in the grammar's shape) goes out as its head and one fragment.

``finish_reason`` is ``tool_calls`` when the answer made at least one call, every call
ended whole and the model stopped on its own. A call cut off (``max_tokens``, a stop
string) is, unstreamed, left out of ``tool_calls`` and its text is ``content`` (with
``length``); streamed, its start and arguments so far have gone out, and the answer ends
with the engine's ``finish_reason`` (``length``), its arguments not parsing, as OpenAI's do.
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

from modelserver.tools.formats import ToolFormat
from modelserver.tools.parser import (
    ArgumentsPiece,
    CallDropped,
    CallEnd,
    CallStart,
    ContentPiece,
    Piece,
    ToolCallParser,
)
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
    """Read a whole (non-streamed) answer: whole calls, and everything else (cut calls too) as text."""
    parser = ToolCallParser(fmt, request)
    texts: list[str] = []
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    whole: list[int] = []
    for piece in parser.feed(text) + parser.finish():
        if isinstance(piece, ContentPiece | CallDropped):
            texts.append(piece.text)
        elif isinstance(piece, CallStart):
            names[piece.index], arguments[piece.index] = piece.name, ""
        elif isinstance(piece, ArgumentsPiece):
            arguments[piece.index] += piece.text
        elif isinstance(piece, CallEnd):
            whole.append(piece.index)
    calls = [_tool_call(names[i], arguments[i]) for i in whole]
    content = "".join(texts)
    return ToolAnswer(content=content or (None if calls else ""), tool_calls=calls)


class ToolDeltaWriter:
    """Turns one streamed answer's text into content and tool-call deltas."""

    def __init__(self, fmt: ToolFormat, request: ToolRequest) -> None:
        self._parser = ToolCallParser(fmt, request)

    def feed(self, text: str) -> list[Delta]:
        """Deltas for newly decoded ``text``: content, a call's start, its arguments so far."""
        return self._deltas(self._parser.feed(text))

    def finish(self) -> list[Delta]:
        """Deltas for what the end of the answer releases."""
        return self._deltas(self._parser.finish())

    def finish_reason(self, finish_reason: str) -> str:
        """The answer's ``finish_reason`` given the engine's: ``tool_calls`` when every call it
        started ended whole and the model stopped on its own."""
        parser = self._parser
        whole = parser.ended and not parser.dropped
        return "tool_calls" if whole and finish_reason == "stop" else finish_reason

    def _deltas(self, pieces: list[Piece]) -> list[Delta]:
        deltas: list[Delta] = []
        for piece in pieces:
            if isinstance(piece, ContentPiece):
                deltas.append(Delta(content=piece.text))
            elif isinstance(piece, CallStart):
                head = ToolCallDelta(
                    index=piece.index,
                    id=new_tool_call_id(),
                    type="function",
                    function=FunctionCallDelta(name=piece.name, arguments=""),
                )
                deltas.append(Delta(tool_calls=[head]))
            elif isinstance(piece, ArgumentsPiece):
                fragment = ToolCallDelta(index=piece.index, function=FunctionCallDelta(arguments=piece.text))
                deltas.append(Delta(tool_calls=[fragment]))
        return deltas


def _tool_call(name: str, arguments: str) -> ToolCall:
    return ToolCall(id=new_tool_call_id(), function=FunctionCall(name=name, arguments=arguments))
