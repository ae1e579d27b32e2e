"""A call's arguments re-encoded as JSON while the model writes them, so they can stream.

A client receives ``function.arguments`` as the JSON text ``json.dumps(value,
ensure_ascii=False)`` writes for the value the model wrote: one space after ``:`` and ``,``,
no other whitespace, strings escaped as strict JSON requires (a grammar's strings may hold raw
control characters, which strict ``json.loads`` refuses). A whole answer could simply be
parsed and dumped again; a streamed one cannot wait for the value to end. The writers here
take the model's text piece by piece and give back, piece by piece, exactly that text: the
concatenation of what they return for a call equals what the whole call re-encodes to, so
streamed and non-streamed answers carry the same arguments.

- :class:`JsonArguments`: the arguments as the model writes them in ``hermes`` and ``glm4``,
  a JSON object; each character is re-encoded as it comes (a string character by
  character, a number or literal once it ends).
- :class:`Glm45Arguments`: GLM-4.5's ``<arg_key>k</arg_key><arg_value>v</arg_value>``
  pairs; each pair is written once its value closes (a value's type, hence its encoding,
  depends on the whole value), the key as soon as it is read.

Neither validates: the grammar does (:mod:`modelserver.tools.formats`). They only stop
(``failed``) on text that cannot be re-encoded; the parser checks that the result parses.
A key written twice is kept twice (``json.loads`` keeps the last), which a grammar built
from a schema does not let happen in practice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

_WHITESPACE = frozenset(" \t\n\r")
_SCALAR = frozenset("+-.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SEPARATORS = {":": ": ", ",": ", "}
CALL_CLOSE = "</tool_call>"


class ArgumentsWriter(Protocol):
    """Turns a call's arguments, as the model writes them, into JSON text piece by piece."""

    done: bool
    """The arguments are whole: everything after them is in ``rest``."""
    failed: bool
    """The text cannot be arguments; ``rest`` holds it from where it went wrong."""
    rest: str
    """Once done or failed: the end of the text fed so far that is not part of the arguments."""

    def feed(self, text: str) -> str:
        """Take more of the model's text; return the JSON text it adds (may be "")."""


def _encoded(char: str) -> str:
    return json.dumps(char, ensure_ascii=False)[1:-1]


class JsonArguments:
    """A JSON object, re-encoded character by character (see the module docstring)."""

    def __init__(self) -> None:
        self.done = False
        self.failed = False
        self.rest = ""
        self._started = False
        self._depth = 0
        self._in_string = False
        self._escape: str | None = None  # an escape sequence being read, backslash included
        self._high: str | None = None  # an escaped high surrogate, waiting for its low half
        self._scalar = ""  # a number or literal being read

    def feed(self, text: str) -> str:
        out: list[str] = []
        for position, char in enumerate(text):
            if not self._take(char, out):
                self.failed = True
                self.rest = text[position:]
                break
            if self.done:
                self.rest = text[position + 1 :]
                break
        return "".join(out)

    def _take(self, char: str, out: list[str]) -> bool:
        """Read one character; False if it cannot be part of a JSON object here."""
        if self._in_string:
            return self._take_in_string(char, out)
        if self._scalar:
            if char in _SCALAR:
                self._scalar += char
                return True
            if not self._end_scalar(out):
                return False
        if char in _WHITESPACE:
            return True
        if not self._started:
            if char != "{":
                return False
            self._started = True
        if char in "{[":
            self._depth += 1
            out.append(char)
        elif char in "}]":
            self._depth -= 1
            out.append(char)
            self.done = self._depth == 0
        elif char in _SEPARATORS:
            out.append(_SEPARATORS[char])
        elif char == '"':
            self._in_string = True
            out.append(char)
        elif char in _SCALAR:
            self._scalar = char
        else:
            return False
        return True

    def _end_scalar(self, out: list[str]) -> bool:
        try:
            value = json.loads(self._scalar)
        except ValueError:
            return False
        out.append(json.dumps(value))
        self._scalar = ""
        return True

    def _take_in_string(self, char: str, out: list[str]) -> bool:
        if self._escape is not None:
            return self._take_escape(char, out)
        if char == "\\":
            self._escape = char
            return True
        self._flush_high(out)
        if char == '"':
            self._in_string = False
            out.append(char)
        else:
            out.append(_encoded(char))
        return True

    def _take_escape(self, char: str, out: list[str]) -> bool:
        assert self._escape is not None
        self._escape += char
        if self._escape[1] != "u":
            decoded = _ESCAPES.get(char)
            if decoded is None:
                return False
            self._escape = None
            self._flush_high(out)
            out.append(_encoded(decoded))
            return True
        if char not in _HEX and len(self._escape) > 2:
            return False
        if len(self._escape) < 6:
            return True
        code = int(self._escape[2:], 16)
        self._escape = None
        # As json.loads reads them: an escaped high surrogate followed at once by an escaped
        # low one is one character; any other surrogate stays a lone one.
        if self._high is not None and 0xDC00 <= code <= 0xDFFF:
            high, self._high = ord(self._high), None
            out.append(_encoded(chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))))
            return True
        self._flush_high(out)
        if 0xD800 <= code <= 0xDBFF:
            self._high = chr(code)
        else:
            out.append(_encoded(chr(code)))
        return True

    def _flush_high(self, out: list[str]) -> None:
        if self._high is not None:
            out.append(_encoded(self._high))
            self._high = None


_KEY_OPEN, _KEY_CLOSE = "<arg_key>", "</arg_key>"
_VALUE_OPEN, _VALUE_CLOSE = "<arg_value>", "</arg_value>"


class Glm45Arguments:
    """GLM-4.5 key/value pairs as a JSON object, a pair at a time, ending at ``</tool_call>``.

    Values are read as the format's reader reads them: a ``string`` property's value is its
    text without surrounding whitespace, any other value is JSON if it parses, else text.
    ``rest`` starts with ``</tool_call>`` once done.
    """

    def __init__(self, properties: Mapping[str, Any]) -> None:
        self.done = False
        self.failed = False
        self.rest = ""
        self._properties = properties
        self._buffer = ""
        self._key: str | None = None
        self._pairs = 0
        self._opened = False

    def feed(self, text: str) -> str:
        out: list[str] = []
        if not self._opened:
            out.append("{")
            self._opened = True
        self._buffer += text
        while not (self.done or self.failed) and self._step(out):
            pass
        return "".join(out)

    def _step(self, out: list[str]) -> bool:
        """Read one tag or pair part from the buffer; False while more text is needed."""
        text = self._buffer.lstrip()
        if self._key is None:
            if text.startswith(CALL_CLOSE):
                out.append("}")
                self.done, self.rest, self._buffer = True, text, ""
                return False
            found = _tagged(text, _KEY_OPEN, _KEY_CLOSE)
            if found is None:
                return self._wait_or_fail(text)
            self._key, self._buffer = found[0].strip(), found[1]
            separator = ", " if self._pairs else ""
            out.append(f"{separator}{json.dumps(self._key, ensure_ascii=False)}: ")
            return True
        found = _tagged(text, _VALUE_OPEN, _VALUE_CLOSE)
        if found is None:
            return self._wait_or_fail(text)
        out.append(json.dumps(self._value(self._key, found[0]), ensure_ascii=False))
        self._key, self._buffer = None, found[1]
        self._pairs += 1
        return True

    def _wait_or_fail(self, text: str) -> bool:
        # An open tag still being written (or whose close has not come yet) waits; anything
        # else is not a pair: the call is not in GLM-4.5's shape.
        expected = (_KEY_OPEN, CALL_CLOSE) if self._key is None else (_VALUE_OPEN,)
        if any(tag.startswith(text) or text.startswith(tag) for tag in expected):
            return False
        self.failed, self.rest = True, self._buffer
        return False

    def _value(self, key: str, raw: str) -> Any:
        spec = self._properties.get(key)
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        # Whitespace around a value is layout (the grammar allows it; GLM's template writes none).
        return raw.strip() if kind == "string" else json_or_text(raw.strip())


def _tagged(text: str, opening: str, closing: str) -> tuple[str, str] | None:
    """(inner text, what follows) when ``text`` starts with a whole ``opening…closing``."""
    if not text.startswith(opening):
        return None
    end = text.find(closing, len(opening))
    if end < 0:
        return None
    return text[len(opening) : end], text[end + len(closing) :]


def json_or_text(raw: str) -> Any:
    """``raw`` as JSON when it parses (strict=False: raw control characters allowed), else as text."""
    try:
        return json.loads(raw, strict=False)
    except json.JSONDecodeError:
        return raw
