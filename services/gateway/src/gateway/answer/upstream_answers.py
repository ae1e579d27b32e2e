"""What the gateway understands of an upstream's answer: the OpenAI fields, nothing an engine adds.

A stage may be any OpenAI-compatible server. vLLM, for one, adds ``system_fingerprint``,
``prompt_token_ids``, ``kv_transfer_params``, ``metrics``, per-choice ``token_ids`` and
``stop_reason``, and more with every release; it names the model by its checkpoint path
and (from 0.3x) puts thinking in ``reasoning``. The gateway therefore reads an upstream's
``chat.completion`` or chunk into :class:`Answer` / :class:`Piece`, keeping only:

- per choice: ``content``, ``reasoning_content`` (or vLLM's ``reasoning``), ``tool_calls``,
  ``refusal``, ``finish_reason``;
- ``usage``: the three counts, and ``prompt_tokens_details`` / ``completion_tokens_details``
  when the upstream gives them (integer counts only);
- FlashSight's own model services' extensions: ``confidence`` (vision, for ``/infer``) and
  ``structured_output`` (is a constrained answer whole? docs/models.md);
- the model id, made readable (:func:`readable_model`).

:mod:`gateway.answer.responses` builds every response from these, so nothing else reaches
the caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EXTENSION_FIELDS = ("confidence", "structured_output")
"""Top-level fields FlashSight's own model services add, passed on to the caller."""

_PATH_PREFIXES = ("/", "./", "../", "~", "\\")


def readable_model(model: object) -> str | None:
    """A model id a person can read: a filesystem path (vLLM serving a local checkpoint) → its last part.

    ``/models/glm-4-9b-chat-hf/`` → ``glm-4-9b-chat-hf``. Hub ids (``zai-org/glm-4-9b-chat-hf``)
    and plain names are kept as they are. None when the upstream named no model.
    """
    if not isinstance(model, str) or not model:
        return None
    is_path = model.startswith(_PATH_PREFIXES) or (len(model) > 2 and model[1] == ":" and model[2] in "/\\")
    if not is_path:
        return model
    parts = [p for p in model.replace("\\", "/").split("/") if p and p not in (".", "..", "~")]
    return parts[-1] if parts else model


def read_usage(raw: object) -> dict[str, Any] | None:
    """The OpenAI usage object: the three counts, and the ``*_tokens_details`` counts when given."""
    if not isinstance(raw, Mapping):
        return None
    usage: dict[str, Any] = {
        name: _count(raw.get(name)) for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    for name in ("prompt_tokens_details", "completion_tokens_details"):
        details = raw.get(name)
        if isinstance(details, Mapping):
            counts = {k: v for k, v in details.items() if isinstance(v, int) and not isinstance(v, bool)}
            if counts:
                usage[name] = counts
    return usage


def read_tool_call(raw: object) -> dict[str, Any] | None:
    """One whole call: ``{"id", "type": "function", "function": {"name", "arguments"}}`` (None: no call)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("function"), Mapping):
        return None
    function = raw["function"]
    arguments = function.get("arguments")
    return {
        "id": str(raw.get("id") or ""),
        "type": "function",
        "function": {"name": str(function.get("name") or ""), "arguments": _arguments(arguments)},
    }


def read_tool_call_delta(raw: object) -> dict[str, Any] | None:
    """One streamed call piece: ``index``, and ``id``, ``type``, ``function.name``/``.arguments`` if given."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("index"), int):
        return None
    piece: dict[str, Any] = {"index": raw["index"]}
    if raw.get("id"):
        piece["id"] = str(raw["id"])
    if raw.get("type") == "function" or raw.get("id"):
        piece["type"] = "function"
    function = raw.get("function")
    if isinstance(function, Mapping):
        fn = {k: str(function[k]) for k in ("name", "arguments") if function.get(k) is not None}
        if fn:
            piece["function"] = fn
    return piece


@dataclass
class Answer:
    """One upstream ``chat.completion`` (its first choice), as the gateway understands it."""

    model: str
    content: str | None
    finish_reason: str
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    refusal: str | None = None
    usage: dict[str, Any] | None = None
    id: str | None = None
    created: int | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    """``confidence`` / ``structured_output`` from FlashSight's own model services."""


def read_completion(body: Mapping[str, Any], *, fallback_model: str = "unknown") -> Answer:
    """The first choice of an upstream ``chat.completion`` (the client checked it has choices)."""
    choice = _object(body["choices"][0])
    message = _object(choice.get("message"))
    calls = [c for c in map(read_tool_call, message.get("tool_calls") or ()) if c is not None]
    content = message.get("content")
    return Answer(
        model=readable_model(body.get("model")) or fallback_model,
        content=content if isinstance(content, str) else None,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        reasoning_content=_thought(message),
        tool_calls=calls or None,
        refusal=message.get("refusal") if isinstance(message.get("refusal"), str) else None,
        usage=read_usage(body.get("usage")),
        id=body["id"] if isinstance(body.get("id"), str) else None,
        created=body["created"] if isinstance(body.get("created"), int) else None,
        extensions={k: body[k] for k in EXTENSION_FIELDS if k in body},
    )


@dataclass
class Piece:
    """What one upstream ``chat.completion.chunk`` adds to a streamed answer."""

    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def says_something(self) -> bool:
        """Text, thinking, a refusal or a tool-call piece: something to send on."""
        return bool(self.content or self.reasoning_content or self.tool_calls or self.refusal)


def read_chunk(chunk: Mapping[str, Any]) -> Piece:
    """The first choice's delta and finish of an upstream chunk, its usage and extensions."""
    piece = Piece(usage=read_usage(chunk.get("usage")))
    choices = chunk.get("choices") or ()
    first = _object(choices[0] if choices else None)
    delta = _object(first.get("delta"))
    if isinstance(delta.get("content"), str):
        piece.content = delta["content"]
    piece.reasoning_content = _thought(delta)
    piece.tool_calls = [d for d in map(read_tool_call_delta, delta.get("tool_calls") or ()) if d is not None]
    if isinstance(delta.get("refusal"), str):
        piece.refusal = delta["refusal"]
    if first.get("finish_reason"):
        piece.finish_reason = str(first["finish_reason"])
        piece.extensions = {k: chunk[k] for k in EXTENSION_FIELDS if k in chunk}
    return piece


class ToolCallAssembler:
    """Streamed call pieces joined into whole calls (by ``index``), for the answer cache."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, pieces: list[dict[str, Any]]) -> None:
        for piece in pieces:
            call = self._calls.setdefault(
                piece["index"], {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            call["id"] = piece.get("id") or call["id"]
            function = piece.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""

    def calls(self) -> list[dict[str, Any]] | None:
        """The whole calls in index order (None: there were none)."""
        return [self._calls[i] for i in sorted(self._calls)] or None


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _thought(message: Mapping[str, Any]) -> str | None:
    # FlashSight and older vLLM say reasoning_content; vLLM 0.3x says reasoning.
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _arguments(value: object) -> str:
    # OpenAI sends arguments as a JSON string; a server that sends an object gets it encoded.
    if isinstance(value, str):
        return value
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
