"""OpenAI tool calling on the wire: tool definitions, ``tool_choice``, calls in answers and deltas.

Request side: ``tools`` (function definitions with a JSON-Schema ``parameters`` object),
``tool_choice`` (``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function",
"function": {"name": ...}}``) and ``parallel_tool_calls``. In the history an assistant turn
may carry ``tool_calls`` and each call is answered by a ``role: "tool"`` message with the
call's ``tool_call_id``; :func:`check_tool_conversation` holds a conversation to the rules
OpenAI enforces (every call answered, no answer without its call).

Response side: a message's ``tool_calls`` (``finish_reason: "tool_calls"``) and, streamed,
:class:`ToolCallDelta` pieces: the first piece of a call carries ``index``, ``id``, ``type``
and ``function.name`` (with empty ``arguments``), the following ones ``index`` and an
``arguments`` fragment, which the client concatenates.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from flashsight_common.schemas import ChatMessage

MAX_TOOLS = 128
"""OpenAI's own limit on ``tools``."""
FUNCTION_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ToolChoiceMode = Literal["auto", "none", "required"]


class FunctionDefinition(BaseModel):
    """``tools[i].function``: what the model may call and the JSON Schema of its arguments."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=FUNCTION_NAME_PATTERN)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Arguments are a JSON object on the wire, so the schema must describe one.
        if value is not None and value.get("type", "object") != "object":
            raise ValueError(
                f"parameters must be a JSON Schema of type 'object' (the arguments are a JSON object), "
                f"got type {value.get('type')!r}"
            )
        return value

    def arguments_schema(self) -> dict[str, Any]:
        """The schema the arguments must match (any object when ``parameters`` is absent)."""
        return self.parameters if self.parameters is not None else {"type": "object"}


class Tool(BaseModel):
    """One entry of ``tools``: only ``type: "function"`` exists in chat completions."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionDefinition


class FunctionName(BaseModel):
    """``{"name": ...}`` inside a named ``tool_choice``."""

    model_config = ConfigDict(extra="forbid")

    name: str


class NamedToolChoice(BaseModel):
    """``tool_choice: {"type": "function", "function": {"name": ...}}``: call exactly this function."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionName


ToolChoice = ToolChoiceMode | NamedToolChoice


class FunctionCall(BaseModel):
    """A call's function: its name and its arguments as a JSON-encoded string (as OpenAI sends them)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict (raises ValueError when they are not a JSON object)."""
        try:
            value = json.loads(self.arguments) if self.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"function.arguments is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise ValueError("function.arguments must encode a JSON object")
        return value


class ToolCall(BaseModel):
    """One entry of an assistant message's ``tool_calls``."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1)]
    type: Literal["function"] = "function"
    function: FunctionCall

    @field_validator("function")
    @classmethod
    def _arguments_are_an_object(cls, value: FunctionCall) -> FunctionCall:
        # The chat template renders the arguments as an object: refuse what it could not render.
        value.parsed_arguments()
        return value


class FunctionCallDelta(BaseModel):
    """The ``function`` of a streamed tool-call piece (name on the first piece only)."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(BaseModel):
    """One streamed tool-call piece; pieces with the same ``index`` belong to one call."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


def new_tool_call_id() -> str:
    """A fresh ``call_`` id, unique per call (clients match results to calls by it)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def check_tool_list(tools: Sequence[Tool] | None) -> None:
    """``tools``: at least one, at most :data:`MAX_TOOLS`, names unique."""
    if tools is None:
        return
    if not tools:
        raise ValueError("tools must hold at least one function; leave tools out to answer without tools")
    if len(tools) > MAX_TOOLS:
        raise ValueError(f"at most {MAX_TOOLS} tools are accepted, got {len(tools)}")
    names = [tool.function.name for tool in tools]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"tool names must be unique; repeated: {', '.join(duplicates)}")


def tool_choice_shape(value: Any) -> Any:
    """Refuse a ``tool_choice`` of the wrong shape with one sentence listing the accepted ones."""
    if isinstance(value, str) and value not in ("auto", "none", "required"):
        raise ValueError(
            f"{value!r} is not a tool_choice; accepted: 'auto', 'none', 'required' or "
            '{"type": "function", "function": {"name": "<one of tools>"}}'
        )
    return value


def check_tool_option(name: str, value: Any, tools: Sequence[Tool] | None) -> None:
    """``tool_choice`` / ``parallel_tool_calls`` need ``tools``; a named choice must be one of them."""
    if value is None:
        return
    if not tools:
        raise ValueError("is only allowed when tools are given")
    names = [tool.function.name for tool in tools]
    if isinstance(value, NamedToolChoice) and value.function.name not in names:
        raise ValueError(
            f"names function {value.function.name!r}, which is not in tools ({', '.join(names)})"
        )


def check_tool_conversation(messages: Sequence[ChatMessage]) -> None:
    """Every assistant tool call is answered by a ``tool`` message before the next turn, and vice versa."""
    open_calls: dict[str, int] = {}
    for i, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id not in open_calls:
                raise ValueError(
                    f"messages[{i}] (role 'tool') answers tool_call_id {message.tool_call_id!r}, which no "
                    "earlier assistant message's tool_calls holds (or it was answered already)"
                )
            del open_calls[message.tool_call_id]
            continue
        if open_calls:
            raise ValueError(
                f"the assistant message at messages[{min(open_calls.values())}] calls tools that no 'tool' "
                f"message answers: {', '.join(sorted(open_calls))}"
            )
        for call in message.tool_calls or ():
            if call.id in open_calls:
                raise ValueError(f"messages[{i}].tool_calls repeats the id {call.id!r}")
            open_calls[call.id] = i
    # Calls still open at the end are fine only if nothing follows: that is an unfinished
    # turn, which a chat template cannot continue, so refuse it too.
    if open_calls:
        raise ValueError(
            f"the assistant message at messages[{min(open_calls.values())}] calls tools that no 'tool' "
            f"message answers: {', '.join(sorted(open_calls))}"
        )
