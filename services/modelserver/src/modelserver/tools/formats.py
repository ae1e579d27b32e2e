"""How a model family writes a tool call: the text that opens and closes one, how to read it
back, and the grammar (an xgrammar structural tag) that makes it valid while decoding.

Three syntaxes, picked per checkpoint by :func:`detect_format` from its chat template:

``hermes`` (FlashSight's default; also Qwen2.5/Hermes templates)::

    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>

``glm4`` (GLM-4-9B chat: the function's name on the first line, the JSON arguments after)::

    get_weather
    {"city": "Paris"}

``glm45`` (GLM-4.5 / GLM-4.6V: XML-ish keys and values; string values unquoted)::

    <tool_call>get_weather
    <arg_key>city</arg_key>
    <arg_value>Paris</arg_value>
    </tool_call>

Grammar per ``tool_choice`` (see :func:`ToolFormat.structural_tag`): a forced function is
exactly one call of it; ``required`` is one or more calls and nothing else; ``auto`` is free
text in which the format's trigger (``<tool_call>``, or ``<name>\\n`` for glm4) opens a call
that must then be complete and valid. The arguments inside a call are constrained by the
function's ``parameters`` schema, so ``json.loads`` of every emitted call succeeds and the
value validates, whatever the model's size.

Streaming: a call whose head is written exactly as the grammar writes it (``<tool_call>{"name":
"f", "arguments": `` then ``{``; ``f\n{``; ``<tool_call>f<``) is known to be a call of ``f``
from there on (:meth:`ToolFormat.head`), and its arguments are re-encoded as they come by the
format's :mod:`~modelserver.tools.arguments` writer, so the call can stream. Any other text
after a trigger is held until the call closes and read whole (:meth:`ToolFormat.read`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flashsight_common.toolcalls import FunctionDefinition

from modelserver.tools.arguments import ArgumentsWriter, Glm45Arguments, JsonArguments, json_or_text
from modelserver.tools.request import ToolRequest

# Consecutive whitespace allowed inside constrained JSON: enough for "a": 1, never a stall
# in endless blank lines (which small models otherwise fall into).
MAX_JSON_WHITESPACE = 1


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A call read back from the model's text: the function and its arguments as a JSON string."""

    name: str
    arguments: str


CallReader = Callable[[str, str, ToolRequest | None], ParsedCall | None]
"""(trigger, body, request) → the call, or None when the text is not a valid call."""


@dataclass(frozen=True, slots=True)
class CallHead:
    """The start of a call, as the grammar writes it: the function, and where its arguments begin."""

    name: str
    arguments_at: int
    """Offset of the arguments in the text after the trigger."""


HeadReading = CallHead | Literal["more"] | None
"""A head; ``"more"`` while the text could still become one; None when it cannot."""
HeadReader = Callable[[str, str, Sequence[str]], HeadReading]
"""(trigger, text after it, the offered names) → :data:`HeadReading`."""


@dataclass(frozen=True, slots=True)
class ToolFormat:
    """One model family's tool-call syntax."""

    name: str
    end: str | None
    """What closes a call (None: the answer's end does)."""
    one_call_per_turn: bool
    """True when the format has no room for several calls in one answer (glm4)."""
    _triggers: Callable[[Sequence[str]], list[str]]
    _tag: Callable[[FunctionDefinition], dict[str, Any]]
    _read: CallReader
    _head: HeadReader
    _arguments: Callable[[dict[str, Any]], ArgumentsWriter]

    def triggers(self, names: Sequence[str]) -> list[str]:
        """The strings that open a call of one of ``names``."""
        return self._triggers(names)

    def head(self, trigger: str, text: str, request: ToolRequest) -> HeadReading:
        """The head of a call of an offered function that ``trigger`` + ``text`` starts with."""
        return self._head(trigger, text, [f.name for f in request.offered])

    def arguments(self, name: str, request: ToolRequest) -> ArgumentsWriter:
        """A fresh writer for the arguments of a call of ``name`` (see :mod:`modelserver.tools.arguments`)."""
        return self._arguments(request.schema_of(name) or {})

    def read(self, trigger: str, body: str, request: ToolRequest | None) -> ParsedCall | None:
        """The call written as ``trigger`` + ``body`` (``end`` excluded), or None if it is not one."""
        call = self._read(trigger, body, request)
        if call is None or (request is not None and request.schema_of(call.name) is None):
            return None  # a function the request did not offer is never reported as a call
        return call

    def structural_tag(self, request: ToolRequest) -> dict[str, Any]:
        """The xgrammar structural tag that makes the answer follow ``request``'s tool choice."""
        tags = [self._tag(function) for function in request.callable]
        single = request.mode == "forced" or not request.parallel or self.one_call_per_turn
        fmt: dict[str, Any]
        if request.mode == "forced":
            fmt = tags[0]
        elif request.mode == "required":
            fmt = {
                "type": "tags_with_separator",
                "tags": tags,
                "separator": "\n",
                "at_least_one": True,
                "stop_after_first": single,
            }
        else:
            fmt = {
                "type": "triggered_tags",
                "tags": tags,
                "stop_after_first": single,
                "triggers": self.triggers([f.name for f in request.callable]),
            }
        return {"type": "structural_tag", "format": fmt}


def _arguments(function: FunctionDefinition, *, style: str = "json") -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": function.arguments_schema(),
        "style": style,
        "max_whitespace_cnt": MAX_JSON_WHITESPACE,
    }


def _loads(text: str) -> Any:
    # strict=False: a grammar's JSON strings may hold raw control characters, which strict
    # JSON forbids; they are read here and escaped again when the arguments are re-encoded,
    # so the arguments a client receives always parse.
    return json.loads(text, strict=False)


def _as_object_json(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else None


def _object_follows(text: str, at: int, name: str) -> HeadReading:
    """A head of ``name`` ending at ``at`` when a JSON object starts there."""
    rest = text[at:].lstrip()
    if not rest:
        return "more"
    return CallHead(name, at) if rest[0] == "{" else None


def _json_arguments(schema: dict[str, Any]) -> ArgumentsWriter:
    return JsonArguments()


# -- hermes -------------------------------------------------------------------------------

HERMES_OPEN = "<tool_call>"
HERMES_CLOSE = "</tool_call>"


def _hermes_tag(function: FunctionDefinition) -> dict[str, Any]:
    # The name is part of the fixed opening, so the model cannot misspell it; the arguments
    # object is the schema's; the wrapper's closing brace is in the end string.
    begin = _hermes_begin(function.name)
    return {"type": "tag", "begin": begin, "content": _arguments(function), "end": "}" + HERMES_CLOSE}


def _hermes_begin(name: str) -> str:
    return f'{HERMES_OPEN}{{"name": {json.dumps(name)}, "arguments": '


def _hermes_read(trigger: str, body: str, request: ToolRequest | None) -> ParsedCall | None:
    try:
        value = _loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as an encoded string
        try:
            arguments = _loads(arguments)
        except json.JSONDecodeError:
            return None
    encoded = _as_object_json(arguments)
    return None if encoded is None else ParsedCall(value["name"], encoded)


def _hermes_head(trigger: str, text: str, names: Sequence[str]) -> HeadReading:
    waiting = False
    for name in names:
        head = _hermes_begin(name)[len(HERMES_OPEN) :]
        if text.startswith(head):
            return _object_follows(text, len(head), name)
        waiting = waiting or head.startswith(text)
    return "more" if waiting else None


HERMES = ToolFormat(
    "hermes",
    HERMES_CLOSE,
    False,
    lambda names: [HERMES_OPEN],
    _hermes_tag,
    _hermes_read,
    _hermes_head,
    _json_arguments,
)


# -- glm4 ---------------------------------------------------------------------------------


def _glm4_tag(function: FunctionDefinition) -> dict[str, Any]:
    return {"type": "tag", "begin": f"{function.name}\n", "content": _arguments(function), "end": ""}


def _glm4_read(trigger: str, body: str, request: ToolRequest | None) -> ParsedCall | None:
    try:
        encoded = _as_object_json(_loads(body))
    except json.JSONDecodeError:
        return None
    return None if encoded is None else ParsedCall(trigger.rstrip("\n"), encoded)


GLM4 = ToolFormat(
    "glm4",
    None,
    True,
    lambda names: [f"{name}\n" for name in names],
    _glm4_tag,
    _glm4_read,
    lambda trigger, text, names: _object_follows(text, 0, trigger.rstrip("\n")),
    _json_arguments,
)


# -- glm45 --------------------------------------------------------------------------------

_GLM45_PAIR = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)


def _glm45_tag(function: FunctionDefinition) -> dict[str, Any]:
    return {
        "type": "tag",
        "begin": f"{HERMES_OPEN}{function.name}",
        "content": _arguments(function, style="glm_xml"),
        "end": HERMES_CLOSE,
    }


def _glm45_read(trigger: str, body: str, request: ToolRequest | None) -> ParsedCall | None:
    name, _, rest = body.partition("<arg_key>")
    name = name.strip()
    rest = "<arg_key>" + rest if rest else ""
    schema = request.schema_of(name) if request is not None else None
    properties = (schema or {}).get("properties", {})
    arguments: dict[str, Any] = {}
    for key, raw in _GLM45_PAIR.findall(rest):
        key = key.strip()
        kind = properties.get(key, {}).get("type") if isinstance(properties.get(key), dict) else None
        # Whitespace around a value is layout (the grammar allows it; GLM's template writes
        # none), so it is not part of the value.
        arguments[key] = raw.strip() if kind == "string" else json_or_text(raw.strip())
    if not name or _GLM45_PAIR.sub("", rest).strip():
        return None  # text that is neither a name nor key/value pairs: not a call
    return ParsedCall(name, json.dumps(arguments, ensure_ascii=False))


def _glm45_head(trigger: str, text: str, names: Sequence[str]) -> HeadReading:
    # The name runs up to the first tag (or layout before it): "get" is no head of "get_time<".
    waiting = False
    for name in names:
        if text.startswith(name):
            rest = text[len(name) :].lstrip()
            if rest.startswith("<"):
                return CallHead(name, len(name))
            waiting = waiting or not rest
        else:
            waiting = waiting or name.startswith(text)
    return "more" if waiting else None


def _glm45_arguments(schema: dict[str, Any]) -> ArgumentsWriter:
    properties = schema.get("properties")
    return Glm45Arguments(properties if isinstance(properties, dict) else {})


GLM45 = ToolFormat(
    "glm45",
    HERMES_CLOSE,
    False,
    lambda names: [HERMES_OPEN],
    _glm45_tag,
    _glm45_read,
    _glm45_head,
    _glm45_arguments,
)


TOOL_FORMATS: Mapping[str, ToolFormat] = {f.name: f for f in (HERMES, GLM4, GLM45)}
"""Format name → syntax (the dispatch table; ``REASONER_TOOL_FORMAT``-style settings name a key)."""


def detect_format(chat_template: str | None) -> ToolFormat:
    """The syntax a chat template teaches its model (``hermes`` when it teaches none)."""
    template = chat_template or ""
    if "<arg_key>" in template:
        return GLM45
    if "item['tools']" in template or "<|observation|>" in template:
        return GLM4
    return HERMES
