"""What a chat request's prompt will really cost, bounded before anything is parsed further or called.

Counting characters of text alone let 600,000 empty messages through a 32,000-character
cap: zero characters, but every message still becomes chat-template markers the model
must tokenise (about five tokens each), and a parsed object the gateway must hold. So:

- the number of messages and of content parts is capped while the body is validated
  (:func:`check_counts`, before any message object is built);
- the prompt's cost is its text plus :data:`TEMPLATE_CHARS_PER_MESSAGE` for each message's
  template markers, capped at ``max_text_chars`` (:func:`check_prompt_cost`) before any
  image is decoded or model called.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import PromptTooLargeError

# A chat template wraps each message in role markers: "<|im_start|>user\n...<|im_end|>\n" is
# about 5 tokens, ~16 characters of the text they would otherwise be.
TEMPLATE_CHARS_PER_MESSAGE = 16


def check_counts(messages: Any, *, max_messages: int, max_parts: int) -> None:
    """Refuse too many messages or content parts; ``messages`` is the raw JSON value (not yet validated)."""
    if not isinstance(messages, list):
        return  # validation says what is wrong with it
    if len(messages) > max_messages:
        raise PromptTooLargeError(
            f"the request has {len(messages):,} messages; at most {max_messages:,} are accepted",
            param="messages",
        )
    parts = sum(
        len(content)
        for message in messages
        if isinstance(message, dict) and isinstance(content := message.get("content"), list)
    )
    if parts > max_parts:
        raise PromptTooLargeError(
            f"the messages have {parts:,} content parts together; at most {max_parts:,} are accepted",
            param="messages",
        )


def prompt_cost(texts: list[str]) -> int:
    """Characters the prompt costs: each message's text plus its chat-template markers."""
    return sum(len(text) + TEMPLATE_CHARS_PER_MESSAGE for text in texts)


def check_prompt_cost(texts: list[str], *, max_chars: int) -> None:
    """400 when the messages (text and template markers) cost more than ``max_chars``."""
    cost = prompt_cost(texts)
    if cost > max_chars:
        raise PromptTooLargeError(
            f"the messages hold {cost:,} characters of text (counting {TEMPLATE_CHARS_PER_MESSAGE} per "
            f"message for the chat template's markers); at most {max_chars:,} are accepted "
            "(shorten the conversation or the prompt)",
            param="messages",
            code="text_too_long",
        )
