"""From an OpenAI chat request to the engine's :class:`GenerationRequest` (and back to JSON).

The wire models live in ``flashsight_common.schemas``; this module owns what the model
services do with them: parse the body with errors that name the field, check the
requested model id, and convert the request into decoding parameters.
"""

from __future__ import annotations

import json
from typing import Any

from flashsight_common.errors import describe_validation_errors
from flashsight_common.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Usage,
)
from pydantic import ValidationError

from modelserver.backend import GenerationRequest, SamplingParams
from modelserver.engine import Completion
from modelserver.errors import InvalidRequestError, ModelNotFoundError, UnsupportedParameterError
from modelserver.tools import ToolFormat, ToolRequest, final_finish_reason, split_answer, tool_request_of

DEFAULT_TEMPERATURE = 0.7
MODEL_ALIASES = frozenset({"", "auto", "default"})
"""``model`` values that mean "whatever this service serves"."""


def parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """Parse a ``/v1/chat/completions`` body, with 400 errors that name the offending field."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"the request body must be JSON (Content-Type: application/json): {exc}", code="invalid_json"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidRequestError(
            "the request body must be a JSON object with 'messages'", code="invalid_json"
        )
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        message, param = describe_validation_errors(exc.errors())
        raise InvalidRequestError(message, param=param, code="invalid_value") from exc


def check_model(requested: str, *, served: str, also: str | None = None) -> None:
    """Accept the served id (or the backend's own id, or an alias); else 404 naming what is served."""
    if requested in MODEL_ALIASES or requested in (served, also):
        return
    raise ModelNotFoundError(
        f"model {requested!r} is not served here; this service serves {served!r} "
        "(or omit 'model' / send 'default')",
        param="model",
    )


def to_generation_request(
    body: ChatCompletionRequest, *, request_id: str, default_max_tokens: int
) -> GenerationRequest:
    """Decoding parameters and backend options for ``body`` (temperature 0 → greedy)."""
    sampling = SamplingParams(
        max_tokens=body.token_limit(default_max_tokens),
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        stop=body.stop_sequences(),
    )
    tools = tool_request_of(body)
    response_format = _response_format(body)
    if tools is not None and response_format is not None:
        raise UnsupportedParameterError(
            "response_format and tools cannot be combined here (both constrain the answer's syntax); "
            "send tool_choice 'none' for a structured answer, or drop response_format",
            param="response_format",
        )
    return GenerationRequest(
        request_id=request_id,
        messages=list(body.messages),
        sampling=sampling,
        response_format=response_format,
        enable_thinking=bool(body.thinking_requested()),
        tools=tools,
    )


def tool_format_for(backend: object, generation: GenerationRequest) -> ToolFormat | None:
    """The backend's call syntax when the request involves tools; a 400 if it has none."""
    fmt: ToolFormat | None = getattr(backend, "tool_format", None)
    involved = generation.tools is not None or any(
        m.tool_calls or m.role == "tool" for m in generation.messages
    )
    if involved and fmt is None:
        raise UnsupportedParameterError(
            f"the backend {getattr(backend, 'model_id', '?')!r} does not call tools; send the request "
            "without tools, tool_calls and tool messages, or to a model that calls tools",
            param="tools",
        )
    return fmt


def _response_format(body: ChatCompletionRequest) -> dict[str, Any] | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema" and not fmt.json_schema:
        raise InvalidRequestError(
            "response_format.json_schema is required when response_format.type is 'json_schema'",
            param="response_format.json_schema",
        )
    return fmt.model_dump(exclude_none=True)


def to_chat_completion(
    completion: Completion, *, completion_id: str, model: str,
    tools: tuple[ToolFormat, ToolRequest] | None = None,
) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` body (``confidence`` only when the backend gave one).

    With ``tools`` (the backend's format and the request's tools) the text is split into
    ``content`` and ``tool_calls``. ``structured_output`` (is the JSON whole?) only for
    ``response_format`` answers decoded under a grammar.
    """
    message = AssistantMessage(content=completion.text, reasoning_content=completion.reasoning_text or None)
    finish_reason = completion.finish_reason
    if tools is not None:
        answer = split_answer(completion.text, *tools)
        message.content, message.tool_calls = answer.content, answer.tool_calls or None
        finish_reason = final_finish_reason(finish_reason, calls=len(answer.tool_calls))
    response = ChatCompletion(
        id=completion_id,
        model=model,
        choices=[Choice(message=message, finish_reason=finish_reason)],
        usage=Usage.of(completion.prompt_tokens, completion.completion_tokens),
    )
    body = response.model_dump(exclude_none=True)
    if message.tool_calls:  # OpenAI sends "content": null beside tool calls, not no content
        body["choices"][0]["message"]["content"] = message.content
    if completion.confidence is not None:
        body["confidence"] = completion.confidence
    if completion.structured is not None:
        body["structured_output"] = completion.structured
    return body
