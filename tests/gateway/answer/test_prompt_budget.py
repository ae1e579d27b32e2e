"""What a prompt costs: messages and parts counted before parsing, template markers in the text cap."""

from __future__ import annotations

import pytest
from gateway.answer.prompt_budget import (
    TEMPLATE_CHARS_PER_MESSAGE,
    check_counts,
    check_prompt_cost,
    prompt_cost,
)
from gateway.errors import PromptTooLargeError


def test_message_and_part_counts_are_capped_on_the_raw_json() -> None:
    check_counts([{"role": "user", "content": ""}] * 3, max_messages=3, max_parts=1)
    with pytest.raises(PromptTooLargeError, match="4 messages; at most 3"):
        check_counts([{"role": "user", "content": ""}] * 4, max_messages=3, max_parts=1)
    parts = [{"role": "user", "content": [{"type": "text", "text": ""}] * 2}] * 2
    with pytest.raises(PromptTooLargeError, match="4 content parts together; at most 3"):
        check_counts(parts, max_messages=10, max_parts=3)


def test_counts_leave_malformed_input_to_validation() -> None:
    check_counts("not a list", max_messages=1, max_parts=1)
    check_counts([42, {"content": "x"}], max_messages=2, max_parts=0)


def test_empty_messages_still_cost_their_template_markers() -> None:
    assert prompt_cost(["", ""]) == 2 * TEMPLATE_CHARS_PER_MESSAGE
    check_prompt_cost(["x" * 84], max_chars=100)
    with pytest.raises(PromptTooLargeError) as refused:
        check_prompt_cost([""] * 7, max_chars=100)
    assert refused.value.code == "text_too_long" and "112 characters" in refused.value.message
