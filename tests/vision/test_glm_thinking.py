"""The <think> splitter and box-marker removal on streamed GLM output."""

from __future__ import annotations

import pytest
from vision.thinking import Segment, ThinkingSplitter, prompt_opens_thinking, split_answer


def run(chunks: list[str], *, in_reasoning: bool = False) -> tuple[str, str, list[Segment]]:
    splitter = ThinkingSplitter(in_reasoning=in_reasoning)
    segments = [segment for chunk in chunks for segment in splitter.feed(chunk)] + splitter.flush()
    reasoning = "".join(s.text for s in segments if s.reasoning)
    content = "".join(s.text for s in segments if not s.reasoning)
    return reasoning, content, segments


def test_think_text_goes_to_reasoning_never_content() -> None:
    reasoning, content, _ = run(["<think>\nThe image shows a receipt.", "</think>\nTotal: 12 EUR"])
    assert reasoning == "The image shows a receipt."
    assert content == "Total: 12 EUR"


@pytest.mark.parametrize("cut", range(1, len("<think>ab</think>cd")))
def test_tags_split_anywhere_across_chunks(cut: int) -> None:
    text = "<think>ab</think>cd"
    reasoning, content, _ = run([text[:cut], text[cut:]])
    assert (reasoning, content) == ("ab", "cd")


def test_one_character_at_a_time() -> None:
    text = "<think>look closer</think>It is a <|begin_of_box|>cat<|end_of_box|>."
    reasoning, content, _ = run(list(text))
    assert reasoning == "look closer"
    assert content == "It is a cat."
    assert "<" not in content


def test_box_markers_removed_inner_text_kept() -> None:
    assert split_answer("<|begin_of_box|>INV-0042<|end_of_box|>") == ("", "INV-0042")


def test_text_is_released_as_soon_as_it_cannot_be_a_tag() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("Hello <") == [Segment("Hello ", False)]  # "<" may start a tag: held
    assert splitter.feed("b>") == [Segment("<b>", False)]  # not a tag after all: released


def test_prompt_prefilled_think_starts_in_reasoning() -> None:
    assert prompt_opens_thinking("<|assistant|>\n<think>")
    assert not prompt_opens_thinking("<|assistant|>\n<think></think>\n")
    reasoning, content, _ = run(["hmm, a chart", "</think>Sales rise."], in_reasoning=True)
    assert (reasoning, content) == ("hmm, a chart", "Sales rise.")


def test_unfinished_tag_at_end_is_text() -> None:
    assert split_answer("a <|begin_of") == ("", "a <|begin_of")


def test_unclosed_think_stays_reasoning() -> None:
    assert split_answer("<think>still thinking when max_tokens hit") == (
        "still thinking when max_tokens hit",
        "",
    )


def test_control_tokens_are_dropped_even_when_split() -> None:
    splitter = ThinkingSplitter(drop={"<|image|>", "<|endoftext|>"})
    out = [
        s for chunk in ("a<|im", "age|>b<|endof", "text|>c") for s in splitter.feed(chunk)
    ] + splitter.flush()
    assert "".join(s.text for s in out) == "abc"
