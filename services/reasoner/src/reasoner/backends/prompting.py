"""Chat messages → token ids through the checkpoint's own chat template (text only).

Message text is defused first (:mod:`modelserver.control_text`): a caller's text, or a
caption of text read off an image, never tokenises as the template's control tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flashsight_common.schemas import ChatMessage
from modelserver.backend import GenerationRequest
from modelserver.control_text import defuser_for
from modelserver.errors import InvalidRequestError, UnsupportedParameterError
from modelserver.tools import ToolRequest, with_tools

# OpenAI's newer "developer" role is a system message to a chat template.
TEMPLATE_ROLES: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",  # rewritten for the template by modelserver.tools.with_tools
}


def check_text_only(request: GenerationRequest) -> None:
    """Refuse image parts: images reach the reasoner only as the vision stage's caption."""
    for index, message in enumerate(request.messages):
        if message.image_urls():
            raise UnsupportedParameterError(
                "the reasoner takes text only; send images to the vision service (or the gateway, "
                "which captions them) and pass the caption as text",
                param=f"messages[{index}].content",
            )


def to_template_messages(
    messages: Sequence[ChatMessage], *, defuse: Callable[[str], str] = str
) -> list[dict[str, Any]]:
    """The conversation as the chat template expects it (role + plain string content, defused)."""
    return [{"role": TEMPLATE_ROLES[message.role], "content": defuse(message.text())} for message in messages]


def encode_prompt(
    tokenizer: Any,
    messages: Sequence[ChatMessage],
    *,
    tools: ToolRequest | None = None,
    tool_style: str = "text",
) -> list[int]:
    """Token ids of the rendered conversation, ending with the assistant's turn opening.

    Tool definitions, earlier calls and tool results are added in ``tool_style``
    (:func:`modelserver.tools.with_tools`).
    """
    turns, template_kwargs = with_tools(
        to_template_messages(messages, defuse=defuser_for(tokenizer)), messages, tools, style=tool_style
    )
    try:
        ids = tokenizer.apply_chat_template(
            turns, add_generation_prompt=True, tokenize=True, return_dict=False, **template_kwargs
        )
    except Exception as exc:  # jinja raises TemplateError for e.g. roles out of order
        raise InvalidRequestError(
            f"the model's chat template rejected these messages: {exc}", param="messages"
        ) from exc
    return [int(token) for token in ids]
