"""OpenAI chat-completions wire models shared by the gateway and the model services.

Every request field is either implemented, ignored on purpose or refused by name: the
models forbid unknown keys and :mod:`flashsight_common.fields` holds the ignored and
refused tables (a refused field whose value asks for nothing, such as ``logprobs:
false``, is accepted, so unmodified SDKs work). Content parts are parsed through a
dispatch table so that an unsupported part type gets an error naming the supported ones.
Tool calling (``tools``, ``tool_choice``, ``tool_calls``, ``role: "tool"``) is modelled in
:mod:`flashsight_common.toolcalls`.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from flashsight_common.fields import drop_accepted_extras
from flashsight_common.toolcalls import (
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    check_tool_conversation,
    check_tool_list,
    check_tool_option,
    tool_choice_shape,
)

DEFAULT_MAX_TOKENS = 512


class TextPart(BaseModel):
    """A ``{"type": "text"}`` content part."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text"] = "text"
    text: str


class ImageURL(BaseModel):
    """The ``image_url`` object of an image part (``detail`` is accepted and ignored: see docs/api.md)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    """A ``{"type": "image_url"}`` content part (``data:`` or ``https://`` URL)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL

    @field_validator("image_url", mode="before")
    @classmethod
    def _accept_bare_string(cls, value: Any) -> Any:
        # Some clients send {"image_url": "data:..."}; accept it as the URL.
        return {"url": value} if isinstance(value, str) else value


ContentPart = TextPart | ImagePart

# Dispatch table: content-part ``type`` → model. The error for an unknown type lists the keys.
CONTENT_PART_TYPES: dict[str, type[BaseModel]] = {"text": TextPart, "image_url": ImagePart}


def parse_content_part(raw: Any) -> ContentPart:
    """Parse one content part, naming the supported types when the type is unknown."""
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        raise ValueError("each content part must be an object with a 'type' field")
    part_type = raw.get("type")
    model = CONTENT_PART_TYPES.get(part_type) if isinstance(part_type, str) else None
    if model is None:
        supported = ", ".join(repr(t) for t in CONTENT_PART_TYPES)
        raise ValueError(f"unsupported content part type {part_type!r}; supported types: {supported}")
    return model.model_validate(raw)  # type: ignore[return-value]


class ChatMessage(BaseModel):
    """One message of a conversation; ``content`` is a string or a list of parts.

    An assistant turn may carry ``tool_calls``; a ``tool`` turn answers one of them by
    ``tool_call_id``. ``name`` and ``refusal`` are accepted and ignored (docs/api.md).
    """

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    reasoning_content: str | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parse_parts(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [parse_content_part(part) for part in value]
        return value

    @model_validator(mode="after")
    def _check_tool_fields(self) -> ChatMessage:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError(
                f"tool_calls is only allowed on assistant messages, not on a {self.role} message"
            )
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id: the id of the call it answers")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError(f"tool_call_id is only allowed on tool messages, not on a {self.role} message")
        return self

    def text(self) -> str:
        """The message's text parts joined by newlines (images left out)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def image_urls(self) -> list[str]:
        """The URLs of the message's image parts, in order."""
        if not isinstance(self.content, list):
            return []
        return [p.image_url.url for p in self.content if isinstance(p, ImagePart)]


class StreamOptions(BaseModel):
    """OpenAI ``stream_options`` (``include_obfuscation`` is accepted and ignored: no padding is sent)."""

    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    include_obfuscation: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI ``response_format``: ``text``, ``json_object`` or ``json_schema``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None


class ChatTemplateKwargs(BaseModel):
    """vLLM/SGLang's ``chat_template_kwargs``: only ``enable_thinking`` is honoured (GLM ``<think>``)."""

    model_config = ConfigDict(extra="forbid")

    enable_thinking: Annotated[bool | None, Field(strict=True)] = None  # true/false only, not "yes"


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="forbid")

    model: str = "auto"
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int | None, Field(ge=1)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1)] = None
    temperature: Annotated[float | None, Field(ge=0.0, le=2.0)] = None
    top_p: Annotated[float | None, Field(gt=0.0, le=1.0)] = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    chat_template_kwargs: ChatTemplateKwargs | None = None
    enable_thinking: Annotated[bool | None, Field(strict=True)] = None
    """Top-level spelling of ``chat_template_kwargs.enable_thinking`` some clients send."""

    @model_validator(mode="before")
    @classmethod
    def _drop_accepted_extras(cls, data: Any) -> Any:
        # Ignored fields and refused-but-neutral values go; anything else unknown stays and is
        # refused by extra="forbid" with the reason from flashsight_common.fields.
        known = {name for name in cls.model_fields} | {
            f.alias for f in cls.model_fields.values() if f.alias
        }
        return drop_accepted_extras(data, known=known)

    @field_validator("n")
    @classmethod
    def _check_n(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"n={value} is not supported; only n=1 is accepted")
        return value

    @field_validator("messages")
    @classmethod
    def _check_tool_conversation(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        check_tool_conversation(value)
        return value

    @field_validator("tools")
    @classmethod
    def _check_tools(cls, value: list[Tool] | None) -> list[Tool] | None:
        check_tool_list(value)
        return value

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_shape(cls, value: Any) -> Any:
        return tool_choice_shape(value)

    @field_validator("tool_choice", "parallel_tool_calls")
    @classmethod
    def _check_tool_options(cls, value: Any, info: ValidationInfo) -> Any:
        if "tools" in info.data:  # else tools itself failed, and its error says why
            check_tool_option(str(info.field_name), value, info.data["tools"])
        return value

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are accepted")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        """``stop`` as a tuple of non-empty strings."""
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)

    def token_limit(self, default: int = DEFAULT_MAX_TOKENS) -> int:
        """``max_completion_tokens`` (newer name) or ``max_tokens``, else the default."""
        return self.max_completion_tokens or self.max_tokens or default

    def include_usage(self) -> bool:
        """Whether a streamed answer must end with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def thinking_requested(self) -> bool | None:
        """``chat_template_kwargs.enable_thinking``, else the top-level ``enable_thinking``, else None."""
        nested = self.chat_template_kwargs.enable_thinking if self.chat_template_kwargs else None
        return nested if nested is not None else self.enable_thinking

    def calls_tools(self) -> bool:
        """True when the model may call a tool: tools were given and ``tool_choice`` is not ``none``."""
        return bool(self.tools) and self.tool_choice != "none"


class Usage(BaseModel):
    """Token counts of one completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class AssistantMessage(BaseModel):
    """The assistant message of a non-streamed choice."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(BaseModel):
    """One choice of a ``chat.completion``."""

    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = "stop"


class ChatCompletion(BaseModel):
    """A non-streamed ``chat.completion`` response."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=lambda: new_completion_id())
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class Delta(BaseModel):
    """The ``delta`` of a streamed choice."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(BaseModel):
    """One choice of a ``chat.completion.chunk``."""

    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One SSE event of a streamed answer."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "flashsight"


class ModelList(BaseModel):
    """The body of ``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


def new_completion_id() -> str:
    """A fresh ``chatcmpl-`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"
