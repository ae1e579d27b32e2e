"""Split a model's streamed text into answer text and tool calls, as it arrives.

Text outside a call is released as content as soon as it cannot be the start of a call
trigger (a tail that could still become ``<tool_call>`` is held back, as stop strings
are). After a trigger:

- **streamed call**: once the text is the head the grammar writes for an offered function
  (:meth:`~modelserver.tools.formats.ToolFormat.head`), the call is started
  (:class:`CallStart`: its index and name) and its arguments follow as they are decoded,
  re-encoded as the JSON clients receive (:class:`ArgumentsPiece`,
  :mod:`modelserver.tools.arguments`). When they are whole and the call's end marker came
  (or, for formats without one, at once) the call ends (:class:`CallEnd`). Under a grammar
  every call is of this kind, so its head goes out as soon as the name is written.
- **held call**: any other text after a trigger (only possible without a grammar) is held
  until the call closes, then read by the format: a valid call comes out whole (start,
  arguments, end at once), anything else is released as content, so nothing the model
  wrote is lost and nothing is reported as a call that is not one.

A streamed call that does not end whole (``max_tokens`` or a stop string cut it, or its
arguments turn out not to parse) ends with :class:`CallDropped`, carrying the call's text:
a whole answer reports that text as content; a stream has sent the call's start already.

Whitespace before a call, between calls and at the end is layout, not an answer: dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelserver.tools.arguments import ArgumentsWriter
from modelserver.tools.formats import CallHead, ParsedCall, ToolFormat
from modelserver.tools.request import ToolRequest


@dataclass(frozen=True, slots=True)
class ContentPiece:
    """Answer text (``content``)."""

    text: str


@dataclass(frozen=True, slots=True)
class CallStart:
    """A call begins: its index in the answer and the function's name."""

    index: int
    name: str


@dataclass(frozen=True, slots=True)
class ArgumentsPiece:
    """The next fragment of call ``index``'s arguments (the fragments concatenate to the JSON)."""

    index: int
    text: str


@dataclass(frozen=True, slots=True)
class CallEnd:
    """Call ``index`` is whole: its arguments parse as a JSON object."""

    index: int


@dataclass(frozen=True, slots=True)
class CallDropped:
    """Call ``index`` did not end whole; ``text`` is what the model wrote of it."""

    index: int
    text: str


Piece = ContentPiece | CallStart | ArgumentsPiece | CallEnd | CallDropped


class ToolCallParser:
    """Incremental splitter for one answer of a request that offers tools."""

    def __init__(self, fmt: ToolFormat, request: ToolRequest) -> None:
        self._format = fmt
        self._request = request
        self._triggers = fmt.triggers([f.name for f in request.offered])
        self._pending = ""
        self._held_space = ""
        # The call being read, if inside one:
        self._trigger: str | None = None
        self._text = ""  # what the model wrote of it so far (trigger included)
        self._held = False  # not in the grammar's shape: read whole when it closes
        self._writer: ArgumentsWriter | None = None  # its arguments, once its head was read
        self._arguments = ""  # the JSON text written for them
        self.started = 0
        """Calls started so far (the next call's index)."""
        self.ended = 0
        """Calls that ended whole."""
        self.dropped = 0
        """Calls started that did not end whole."""

    def feed(self, text: str) -> list[Piece]:
        """Take newly decoded ``text``; return what can be released now."""
        self._pending += text
        out: list[Piece] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> list[Piece]:
        """The answer ended: end or drop the open call (or release it as text) and flush the rest."""
        out: list[Piece] = []
        if self._trigger is None:
            self._release(self._pending, out)
        elif self._writer is not None:
            # Arguments whole but the end marker cut off: the call is whole all the same.
            self._end_streamed(out, whole=self._writer.done, tail=self._pending)
        else:
            self._close_held(self._pending, out, closed=False)
        self._pending = ""
        self._held_space = ""  # trailing whitespace is layout
        return out

    def _step(self, out: list[Piece]) -> bool:
        """Advance once; True if more may be done with what is pending."""
        if self._trigger is None:
            return self._seek_trigger(out)
        if self._held:
            return self._read_held(out)
        if self._writer is None:
            return self._read_head(out)
        if not (self._writer.done or self._writer.failed):
            return self._read_arguments(out)
        return self._seek_end(out)

    def _seek_trigger(self, out: list[Piece]) -> bool:
        position, trigger = self._first_trigger()
        if trigger is None:
            keep = self._partial_trigger_length()
            self._release(self._pending[: len(self._pending) - keep], out)
            self._pending = self._pending[len(self._pending) - keep :]
            return False
        self._release(self._pending[:position], out)
        self._held_space = ""  # whitespace before a call is layout
        self._pending = self._pending[position + len(trigger) :]
        self._trigger, self._text = trigger, trigger
        return True

    def _read_head(self, out: list[Piece]) -> bool:
        assert self._trigger is not None
        head = self._format.head(self._trigger, self._pending, self._request)
        if isinstance(head, CallHead):
            self._text += self._pending[: head.arguments_at]
            self._pending = self._pending[head.arguments_at :]
            self._writer = self._format.arguments(head.name, self._request)
            out.append(CallStart(self.started, head.name))
            self.started += 1
            return True
        end = self._format.end
        if head is None or (end is not None and end in self._pending):
            self._held = True  # not the grammar's head: read the call whole once it closes
            return True
        return False

    def _read_arguments(self, out: list[Piece]) -> bool:
        assert self._writer is not None
        fed, self._pending = self._pending, ""
        self._text += fed
        written = self._writer.feed(fed)
        if written:
            self._arguments += written
            out.append(ArgumentsPiece(self.started - 1, written))
        if self._writer.done or self._writer.failed:
            # What follows the arguments (a suffix of what the writer took) is read on from here.
            self._pending = self._writer.rest
            self._text = self._text[: len(self._text) - len(self._pending)]
            return True
        return False

    def _seek_end(self, out: list[Piece]) -> bool:
        # After the arguments: the rest of the call's markup (hermes' closing brace) up to its
        # end marker; a format without one ends with the arguments.
        # Text that is not arguments after all runs, as a held call does, to the end marker
        # (or to the answer's end).
        assert self._writer is not None
        end = self._format.end
        if end is not None:
            position = self._pending.find(end)
            if position < 0:
                return False
            self._text += self._pending[: position + len(end)]
            self._pending = self._pending[position + len(end) :]
        elif self._writer.failed:
            return False
        self._end_streamed(out, whole=self._writer.done)
        return True

    def _end_streamed(self, out: list[Piece], *, whole: bool, tail: str = "") -> None:
        index = self.started - 1
        if whole and _is_object(self._arguments):
            out.append(CallEnd(index))
            self.ended += 1
        else:
            out.append(CallDropped(index, (self._text + tail).rstrip()))
            self.dropped += 1
        self._reset()

    def _read_held(self, out: list[Piece]) -> bool:
        end = self._format.end
        if end is None or (position := self._pending.find(end)) < 0:
            return False  # the call goes on (or, without an end marker, runs to the answer's end)
        body, self._pending = self._pending[:position], self._pending[position + len(end) :]
        self._close_held(body, out, closed=True)
        return True

    def _close_held(self, body: str, out: list[Piece], *, closed: bool) -> None:
        trigger = self._trigger or ""
        self._reset()
        call = self._format.read(trigger, body, self._request)
        if call is None:  # not a call after all: the model's text, kept as text
            self._release(trigger + body + ((self._format.end or "") if closed else ""), out)
            return
        self._emit_whole(call, out)

    def _emit_whole(self, call: ParsedCall, out: list[Piece]) -> None:
        index = self.started
        out += [CallStart(index, call.name), ArgumentsPiece(index, call.arguments), CallEnd(index)]
        self.started += 1
        self.ended += 1

    def _reset(self) -> None:
        self._trigger, self._text, self._held = None, "", False
        self._writer, self._arguments = None, ""

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


def _is_object(arguments: str) -> bool:
    try:
        return isinstance(json.loads(arguments), dict)
    except json.JSONDecodeError:
        return False
