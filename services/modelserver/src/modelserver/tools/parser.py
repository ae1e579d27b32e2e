"""Split a model's streamed text into answer text and tool calls, as it arrives.

Text outside a call is released as content as soon as it cannot be the start of a call
trigger (a tail that could still become ``<tool_call>`` is held back, as stop strings
are). Inside a call the text is held until the call closes (its end marker, or the end
of the answer for formats without one), then read back by the format: a valid call
becomes a :class:`ParsedCall`; text that turns out not to be one is released as content,
so nothing the model wrote is lost and nothing is reported as a call that is not one.

Whitespace before a call, between calls and at the end is layout, not an answer: dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelserver.tools.formats import ParsedCall, ToolFormat
from modelserver.tools.request import ToolRequest


@dataclass(frozen=True, slots=True)
class ContentPiece:
    """Answer text (``content``)."""

    text: str


Piece = ContentPiece | ParsedCall


class ToolCallParser:
    """Incremental splitter for one answer of a request that offers tools."""

    def __init__(self, fmt: ToolFormat, request: ToolRequest) -> None:
        self._format = fmt
        self._request = request
        self._triggers = fmt.triggers([f.name for f in request.offered])
        self._pending = ""
        self._trigger: str | None = None  # the trigger of the call being read, if inside one
        self._held_space = ""
        self.calls = 0
        """How many calls were read so far."""

    def feed(self, text: str) -> list[Piece]:
        """Take newly decoded ``text``; return what can be released now."""
        self._pending += text
        out: list[Piece] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> list[Piece]:
        """The answer ended: read an unclosed call (or release it as text) and flush the rest."""
        out: list[Piece] = []
        if self._trigger is not None:
            self._close_call(self._pending, out, closed=False)
        else:
            self._release(self._pending, out)
        self._pending = ""
        self._held_space = ""  # trailing whitespace is layout
        return out

    def _step(self, out: list[Piece]) -> bool:
        """Advance once; True if more may be done with what is pending."""
        if self._trigger is None:
            position, trigger = self._first_trigger()
            if trigger is None:
                keep = self._partial_trigger_length()
                self._release(self._pending[: len(self._pending) - keep], out)
                self._pending = self._pending[len(self._pending) - keep :]
                return False
            self._release(self._pending[:position], out)
            self._held_space = ""  # whitespace before a call is layout
            self._pending = self._pending[position + len(trigger) :]
            self._trigger = trigger
            return True
        end = self._format.end
        if end is None or (position := self._pending.find(end)) < 0:
            return False  # the call goes on (or, without an end marker, runs to the answer's end)
        body, self._pending = self._pending[:position], self._pending[position + len(end) :]
        self._close_call(body, out, closed=True)
        return True

    def _close_call(self, body: str, out: list[Piece], *, closed: bool) -> None:
        trigger, self._trigger = self._trigger or "", None
        call = self._format.read(trigger, body, self._request)
        if call is None:  # not a call after all: the model's text, kept as text
            self._release(trigger + body + ((self._format.end or "") if closed else ""), out)
            return
        self.calls += 1
        out.append(call)

    def _release(self, text: str, out: list[Piece]) -> None:
        # Trailing whitespace is held: released with the next text, dropped before a call or
        # at the end, so streamed and whole answers split the same way.
        text = self._held_space + text
        body = text.rstrip()
        self._held_space = text[len(body) :]
        if not body:
            return
        if out and isinstance(out[-1], ContentPiece):
            out[-1] = ContentPiece(out[-1].text + body)
        else:
            out.append(ContentPiece(body))

    def _first_trigger(self) -> tuple[int, str | None]:
        best, found = len(self._pending), None
        for trigger in self._triggers:
            position = self._pending.find(trigger)
            if 0 <= position < best:
                best, found = position, trigger
        return best, found

    def _partial_trigger_length(self) -> int:
        longest = 0
        for trigger in self._triggers:
            for size in range(min(len(trigger) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(trigger[:size]):
                    longest = size
                    break
        return longest
