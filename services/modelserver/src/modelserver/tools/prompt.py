"""Tool definitions, earlier calls and tool results into the prompt, through the chat template.

A backend builds its chat-template turns as before (role + content, one per message) and
hands them here with the request's messages; :func:`with_tools` adds what tool calling
needs, in the way the checkpoint's template expects (:data:`PROMPT_STYLES`):

``native``  the template renders tools itself (Qwen2.5, GLM-4.5/4.6V, ...): ``tools=`` goes
            to ``apply_chat_template``, assistant turns get ``tool_calls`` (arguments as an
            object, the Hugging Face convention) and results stay ``role: "tool"``.
``glm4``    GLM-4-9B chat's template: the tools ride on the first (system) turn's ``tools``
            key, each earlier call is an assistant turn whose ``metadata`` is the function's
            name and whose content is the JSON arguments, and results are ``observation``
            turns.
``text``    the template knows nothing of tools (SmolLM2): FlashSight writes the tool list
            and the call syntax (:mod:`modelserver.tools.formats`, ``hermes``) into the
            system turn, earlier calls as that syntax in the assistant's text, and results
            as user turns ("The function get_weather returned: …"; SmolLM2-135M parroted
            ``<tool_response>`` tags back instead of answering from them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flashsight_common.schemas import ChatMessage
from flashsight_common.toolcalls import ToolCall

from modelserver.tools.formats import GLM4, HERMES_CLOSE, HERMES_OPEN, ToolFormat
from modelserver.tools.request import ToolRequest

Turns = list[dict[str, Any]]
Renderer = Callable[[Turns, Sequence[ChatMessage], ToolRequest | None], tuple[Turns, dict[str, Any]]]

TEXT_TOOLS_PROMPT = (
    "You can call functions. The available functions, as JSON, one per line:\n{functions}\n"
    "To call a function, answer with one line per call and nothing else, exactly like this:\n"
    f'{HERMES_OPEN}{{{{"name": "<function name>", '
    f'"arguments": {{{{<arguments as JSON>}}}}}}}}{HERMES_CLOSE}\n'
    "If no function is needed, answer in plain text."
)


TEXT_RESULT = "The function {name} returned:\n{result}\nAnswer my question using this result."


def _arguments(call: ToolCall) -> dict[str, Any]:
    return call.function.parsed_arguments()


def _native(
    turns: Turns, messages: Sequence[ChatMessage], tools: ToolRequest | None
) -> tuple[Turns, dict[str, Any]]:
    out: Turns = []
    for turn, message in zip(turns, messages, strict=True):
        turn = dict(turn)
        if message.tool_calls:
            turn["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": _arguments(c)},
                }
                for c in message.tool_calls
            ]
        if message.role == "tool":
            turn.update(role="tool", tool_call_id=message.tool_call_id)
        out.append(turn)
    return out, ({"tools": tools.template_tools()} if tools is not None else {})


def _glm4(
    turns: Turns, messages: Sequence[ChatMessage], tools: ToolRequest | None
) -> tuple[Turns, dict[str, Any]]:
    out: Turns = []
    for turn, message in zip(turns, messages, strict=True):
        if message.role == "tool":
            out.append({**turn, "role": "observation", "metadata": ""})
            continue
        if message.tool_calls:
            if turn.get("content"):
                out.append({**turn, "metadata": ""})
            for call in message.tool_calls:
                arguments = json.dumps(_arguments(call), ensure_ascii=False)
                out.append({"role": "assistant", "metadata": call.function.name, "content": arguments})
            continue
        out.append({**turn, "metadata": turn.get("metadata", "")})
    if tools is not None:
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "tools": tools.template_tools()}
        else:
            out.insert(0, {"role": "system", "content": "", "metadata": "", "tools": tools.template_tools()})
    return out, {}


def _text(
    turns: Turns, messages: Sequence[ChatMessage], tools: ToolRequest | None
) -> tuple[Turns, dict[str, Any]]:
    out: Turns = []
    names = {c.id: c.function.name for m in messages for c in m.tool_calls or ()}
    for turn, message in zip(turns, messages, strict=True):
        if message.role == "tool":
            # Plain words, not tags: small models answer from "X returned: ..." and parrot tags.
            name = names.get(message.tool_call_id or "", "the function")
            out.append(
                {"role": "user", "content": TEXT_RESULT.format(name=name, result=turn.get("content") or "")}
            )
            continue
        if message.tool_calls:
            lines = [turn.get("content") or ""] + [
                HERMES_OPEN
                + json.dumps({"name": c.function.name, "arguments": _arguments(c)}, ensure_ascii=False)
                + HERMES_CLOSE
                for c in message.tool_calls
            ]
            out.append({**turn, "content": "\n".join(line for line in lines if line)})
            continue
        out.append(turn)
    if tools is not None:
        functions = "\n".join(json.dumps(f["function"], ensure_ascii=False) for f in tools.template_tools())
        prompt = TEXT_TOOLS_PROMPT.format(functions=functions)
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": f"{out[0].get('content') or ''}\n\n{prompt}".strip()}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out, {}


PROMPT_STYLES: Mapping[str, Renderer] = {"native": _native, "glm4": _glm4, "text": _text}


def prompt_style(fmt: ToolFormat, chat_template: str | None) -> str:
    """Which renderer a checkpoint needs: its format's own, else native if its template takes tools."""
    if fmt is GLM4:
        return "glm4"
    return "native" if "tools" in (chat_template or "") else "text"


def with_tools(
    turns: Turns, messages: Sequence[ChatMessage], tools: ToolRequest | None, *, style: str
) -> tuple[Turns, dict[str, Any]]:
    """``turns`` (one per message) with calls, results and tool definitions added, plus the
    extra ``apply_chat_template`` keyword arguments (``tools=`` for native templates)."""
    if tools is None and not any(m.tool_calls or m.role == "tool" for m in messages):
        return turns, {}
    return PROMPT_STYLES[style](turns, messages, tools)
