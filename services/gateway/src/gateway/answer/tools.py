"""Tool calling through the gateway: which stage answers a tools request, and what a degraded one may do.

A request *involves tools* when it offers ``tools`` or its history holds assistant
``tool_calls`` or ``role: "tool"`` results. It must be answered by a model that can both
see the images and call, so its route is decided here, not by the keywords:

- no image: the reasoner (as any question without an image);
- images, and vision calls tools (GLM-4.6V on the ``glm`` backend; vision's ``/readyz``
  says ``calls_tools``, or ``GATEWAY_VISION_TOOLS=on``): ``direct``, the model that sees
  the image calls;
- images, and vision does not call (the embedded ``ocr-lite``, or a server that does not
  say): the cascade, the reasoner calls from the captions.

A forced route is kept, except ``direct`` to a vision model that calls no tools (a 400:
it would refuse them). The language gates (gateway.answer.languages) never move a tools
route (``RouteDecision.final``): only these stages can keep the request's contract.

Deadlines and loops: the reasoner's stream must show its first token within
``GATEWAY_REASONER_FIRST_TOKEN_TIMEOUT_S`` only so that it can still be replaced by vision;
a request that must call cannot be (below), so its stream waits for the first token as long
as a whole answer may take (``GATEWAY_REASONER_TIMEOUT_S``). The loop cutter
(gateway.answer.repetition) leaves an answer that may hold calls alone: the text of a call
that ``max_tokens`` cut off is the model's own looping, and cutting it would hide that it
was cut (``length``) and could end the content inside the call's markup.

Degrading: when the reasoner cannot answer, other requests get vision's text answer
(marked degraded). A tools request may too when ``tool_choice`` is ``auto`` or ``none``
(text is a valid answer to those): vision is then sent no tools and the tool history as
text, so it never calls, and a degraded answer never holds an invented call. With
``required`` or a named function a text answer would break the caller's contract: the
request fails with :class:`~gateway.errors.ToolCallsUnavailableError` (503, retryable).
"""

from __future__ import annotations

import json
from typing import Any

from flashsight_common.schemas import ChatMessage
from flashsight_common.toolcalls import NamedToolChoice

from gateway.answer.route_choice import Route, RouteDecision
from gateway.errors import RouteCannotCallToolsError, ToolCallsUnavailableError
from gateway.schemas import GatewayChatRequest


def involves_tools(request: GatewayChatRequest) -> bool:
    """Tools offered, or tool calls and results in the history."""
    return bool(request.tools) or any(m.tool_calls or m.role == "tool" for m in request.messages)


def may_call(request: GatewayChatRequest) -> bool:
    """Tools offered and ``tool_choice`` is not ``none``: the answer may hold calls (or a cut call's text)."""
    return bool(request.tools) and request.tool_choice != "none"


def must_call(request: GatewayChatRequest) -> bool:
    """``tool_choice`` is ``required`` or names a function: the answer must be a call."""
    return bool(request.tools) and (
        request.tool_choice == "required" or isinstance(request.tool_choice, NamedToolChoice)
    )


def route_tools(forced: Route | None, *, has_images: bool, vision_calls: bool) -> RouteDecision:
    """The route of a request that involves tools (see the module docstring); final."""
    if forced == "direct" and not vision_calls:
        raise RouteCannotCallToolsError(
            "route 'direct' cannot answer a request with tools: the vision model calls no tools "
            "(GATEWAY_VISION_TOOLS, or its /readyz calls_tools); leave the route to the gateway "
            "(the reasoner calls them) or force 'cascade'",
            param="route",
        )
    if forced is not None:
        return RouteDecision(forced, "forced", final=True)
    if not has_images:
        return RouteDecision("cascade", "no_image", final=True)
    return RouteDecision("direct" if vision_calls else "cascade", "tools", final=True)


def refuse_text_instead(request: GatewayChatRequest, *, because: str, retry_after: int | None = None) -> None:
    """Raise when a text answer (vision's, the holding reply) may not stand in: a call is required."""
    if must_call(request):
        later = ": retry later" if retry_after is not None else ""
        raise ToolCallsUnavailableError(
            f"the request requires a tool call (tool_choice {_choice(request)}) and {because}; "
            f"a text answer would not be a call, so none is given{later}",
            param="tool_choice",
            retry_after=retry_after,
        )


def tool_texts(request: GatewayChatRequest) -> list[str]:
    """What tools add to the prompt: the function definitions and the calls' arguments (for its cost)."""
    texts = [json.dumps(request.tool_fields()["tools"], ensure_ascii=False)] if request.tools else []
    for message in request.messages:
        texts += [call.function.name + call.function.arguments for call in message.tool_calls or ()]
    return texts


def text_history(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation for a model sent no tools: calls and results become plain turns it can read."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            out.append({"role": "user", "content": f"Tool result ({message.tool_call_id}): {message.text()}"})
            continue
        dumped = message.model_dump(exclude_none=True, exclude={"tool_calls"})
        if message.tool_calls:
            calls = "\n".join(
                f"Called {c.function.name}({_compact(c.function.arguments)})" for c in message.tool_calls
            )
            dumped["content"] = "\n".join(p for p in (message.text(), calls) if p)
        out.append(dumped)
    return out


def _choice(request: GatewayChatRequest) -> str:
    choice = request.tool_choice
    return f"names {choice.function.name!r}" if isinstance(choice, NamedToolChoice) else repr(choice)


def _compact(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, separators=(",", ":"))
    except json.JSONDecodeError:
        return arguments
