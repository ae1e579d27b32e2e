"""The grammar's view of the vocabulary: added tokens are never part of a constrained answer."""

from __future__ import annotations

import pytest
import torch
from modelserver.structured import StructuredOutput, completeness
from transformers import AutoTokenizer

from tests.support.tiny_models import GLM4_CHAT_TINY, tiny_model_path

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "x",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    },
}


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(tiny_model_path(GLM4_CHAT_TINY))


def allowed_after(structured: StructuredOutput, tokenizer, text: str) -> set[int]:  # type: ignore[no-untyped-def]
    constraint = structured.constraint(SCHEMA)
    assert constraint is not None
    for token in tokenizer.encode(text, add_special_tokens=False):
        assert constraint.accept(token), text
    logits = torch.zeros(1, len(tokenizer))
    constraint.mask(logits, remaining=100)
    return set(torch.isfinite(logits[0]).nonzero().flatten().tolist())


def test_markup_and_special_tokens_are_never_allowed_inside_a_json_string(tokenizer) -> None:  # type: ignore[no-untyped-def]
    stops = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|user|>"])
    structured = StructuredOutput(tokenizer, vocab_size=len(tokenizer), stop_token_ids=stops)
    inside = allowed_after(structured, tokenizer, '{"a": "x')
    # <think> would switch vision's splitter to reasoning, special tokens vanish on decoding:
    # either way the text would differ from what the grammar checked.
    added = set(tokenizer.added_tokens_decoder)
    assert not inside & added, sorted(inside & added)
    assert tokenizer.convert_tokens_to_ids("a") in inside  # ordinary text still is
    control = {i for i in range(len(tokenizer)) if any(ord(c) < 0x20 for c in tokenizer.decode([i]))}
    assert control and not inside & control  # raw control bytes never (JSON wants \u0007)
    assert allowed_after(structured, tokenizer, '{"a": "x"}') == set(stops)  # the end: stop tokens only


def test_completeness_reports_a_whole_value_and_a_cut_one(tokenizer) -> None:  # type: ignore[no-untyped-def]
    stops = tokenizer.convert_tokens_to_ids(["<|endoftext|>"])
    structured = StructuredOutput(tokenizer, vocab_size=len(tokenizer), stop_token_ids=stops)
    whole, cut = structured.constraint(SCHEMA), structured.constraint(SCHEMA)
    assert whole is not None and cut is not None
    for token in tokenizer.encode('{"a": "x"}', add_special_tokens=False):
        whole.accept(token)
    for token in tokenizer.encode('{"a": "x', add_special_tokens=False):
        cut.accept(token)
    assert completeness(whole, "length") == {"status": "complete"}
    report = completeness(cut, "length")
    assert report["status"] == "incomplete" and report["reason"] == "length"


def test_keys_come_in_the_order_the_schema_lists_them(tokenizer) -> None:  # type: ignore[no-untyped-def]
    # xgrammar writes properties in the schema's order: the answer reads setup, then punchline.
    stops = tokenizer.convert_tokens_to_ids(["<|endoftext|>"])
    structured = StructuredOutput(tokenizer, vocab_size=len(tokenizer), stop_token_ids=stops)
    properties = {"setup": {"type": "string"}, "punchline": {"type": "string"}}
    schema = {"type": "object", "properties": properties, "required": ["setup", "punchline"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "joke", "schema": schema}}

    def accepts(text: str) -> bool:
        constraint = structured.constraint(fmt)
        assert constraint is not None
        return all(constraint.accept(t) for t in tokenizer.encode(text, add_special_tokens=False))

    assert accepts('{"setup": "Why?", "punchline": "Because."}')
    assert not accepts('{"punchline": "Because.", "setup": "Why?"}')
