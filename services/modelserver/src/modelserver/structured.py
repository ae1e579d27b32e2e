"""Structured output enforced while decoding: ``response_format`` → a per-row logits constraint.

Library choice: **xgrammar** (MLC; the structured-output engine vLLM, SGLang and TensorRT-LLM
ship by default). It installs from a wheel next to torch 2.13 CPU, reads a Hugging Face
tokenizer directly (``TokenizerInfo.from_huggingface``), compiles JSON Schema or a JSON
grammar in ~0.1 s (cached per schema), and fills a next-token bitmask in ~0.1 ms, so the
per-step cost is negligible beside a forward pass. lm-format-enforcer (pure Python, per-token
trie walks) and outlines-core (regex-only FSMs, schema→regex conversion done elsewhere) were
the fall-backs and were not needed.

A :class:`JsonConstraint` masks one row's logits to the tokens the grammar allows next,
accepts the sampled token, and reports when the grammar has terminated (the closing brace
was written and the EOS token accepted). When few tokens remain before ``max_tokens`` it
steers towards closing (strings, objects, arrays) so a tight token budget still yields
JSON that parses whenever the schema allows closing early (always for ``json_object``).

JSON is generated compactly (no free whitespace): a model cannot stall in endless blank
lines, which small or random-weight models otherwise do. An object's keys come in the order
the schema lists its ``properties`` (as xgrammar writes them), so schemas reach it as given,
never with sorted keys: a Joke's ``setup`` is written before its ``punchline``.

The grammar sees the text the answer will really contain. xgrammar reads every vocabulary
entry as literal text, added tokens included: ``<|user|>``, ``[MASK]``, ``<think>``,
``<|begin_of_box|>`` are to it ordinary characters that a JSON string may hold. But the
detokenizer drops special tokens (reasoner), and vision's output splitter turns
``<think>`` into reasoning and strips box and control markers, so such a token sampled
inside a JSON string changed the text after the grammar had checked it: vision answers
that finished with ``stop`` lost the rest of their JSON to ``reasoning_content`` (about 1
in 5 on the tiny checkpoint at temperature 0.8 to 1.3) and were not JSON. Added tokens are
therefore handed to xgrammar as empty entries, which it never allows (the stop tokens stay
allowed where the value may end); every character of a constrained answer then comes from
ordinary vocabulary pieces that decode exactly to what the grammar matched.

An answer cut before its JSON is complete (``max_tokens``, the context, or a stop string)
is reported as such: :func:`completeness` says ``incomplete`` with the reason, and the
model services put that in the response as ``structured_output`` next to ``finish_reason``
(never silently; a stop string's cut is marked by the engine, which applies stop strings).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import xgrammar as xgr

from modelserver.errors import InvalidRequestError, UnsupportedParameterError

log = logging.getLogger(__name__)

STRUCTURED_TYPES = ("json_object", "json_schema")
# In the last tokens before max_tokens the row takes the first of these pieces the grammar
# allows: first what closes a string, object or array, then what moves on to the next
# required key or value, so the answer still parses. Order matters: inside a string ``}`` is
# allowed too but only ``"`` closes it.
CLOSING_PIECES: tuple[str, ...] = (
    '"}',
    '"]',
    '"',
    "}}",
    "]}",
    "}]",
    "}",
    "]",
    '":',
    ":",
    '",',
    ",",
    '""',
)
# Tokens kept in reserve for closing: a few nested levels and a short missing key.
CLOSING_RESERVE = 16
# json_object: any object (extra keys allowed, hence strict_mode off).
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
_CPP_PREFIX = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s*")


class JsonConstraint:
    """One row's grammar state: masks its logits each step and accepts the sampled token."""

    def __init__(self, compiled: Any, *, closing_ids: Sequence[int], reports: bool = True) -> None:
        self._reports = reports
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)
        self._closing_ids = closing_ids
        self._stop_ids = frozenset(int(i) for i in compiled.tokenizer_info.stop_token_ids)

    @property
    def terminated(self) -> bool:
        """True once the whole value and the end-of-sequence token have been accepted."""
        return bool(self._matcher.is_terminated())

    @property
    def complete(self) -> bool:
        """True once the JSON value is whole (terminated, or only the end may follow)."""
        if self._matcher.is_terminated():
            return True
        self._matcher.fill_next_token_bitmask(self._bitmask)
        allowed = _allowed_ids(self._bitmask)
        return bool(allowed) and allowed <= self._stop_ids

    def mask(self, logits: torch.Tensor, *, remaining: int) -> None:
        """Set disallowed entries of ``logits`` (shape ``(1, vocab)``) to -inf, in place."""
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bitmask = self._bitmask.to(logits.device)
        xgr.apply_token_bitmask_inplace(logits, bitmask, vocab_size=logits.shape[-1])
        if remaining > CLOSING_RESERVE:
            return
        allowed = torch.isfinite(logits[0, list(self._closing_ids)]).tolist() if self._closing_ids else []
        for token, ok in zip(self._closing_ids, allowed, strict=True):
            if ok:  # force the first closing piece the grammar allows here
                logits.fill_(float("-inf"))
                logits[0, token] = 0.0
                return

    def accept(self, token: int) -> bool:
        """Advance the grammar by ``token``; False if the grammar rejects it (should not happen)."""
        return bool(self._matcher.accept_token(token))

    def report(self, finish_reason: str) -> dict[str, str] | None:
        """:func:`completeness` for a ``response_format`` answer; None for tool calls (their own check)."""
        return completeness(self, finish_reason) if self._reports else None


class StructuredOutput:
    """Compiles ``response_format`` values into constraints for one tokenizer and vocabulary."""

    def __init__(self, tokenizer: Any, *, vocab_size: int, stop_token_ids: Iterable[int]) -> None:
        info = _tokenizer_info(tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(set(stop_token_ids)))
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self._closing_ids = _single_token_ids(tokenizer, CLOSING_PIECES)

    def check(self, response_format: dict[str, Any] | None) -> None:
        """Raise a 400-class error now if ``response_format`` cannot be enforced (compiles it)."""
        self._compile(response_format)

    def constraint(self, response_format: dict[str, Any] | None) -> JsonConstraint | None:
        """A fresh constraint for one row, or None for plain text."""
        compiled = self._compile(response_format)
        return None if compiled is None else JsonConstraint(compiled, closing_ids=self._closing_ids)

    def tag_constraint(self, structural_tag: dict[str, Any]) -> JsonConstraint:
        """A fresh constraint for an xgrammar structural tag (tool calls: :mod:`modelserver.tools`).

        No closing steer: outside a call the text is free, where forcing ``"}`` would be junk.
        """
        try:
            compiled = self._compiler.compile_structural_tag(json.dumps(structural_tag))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise InvalidRequestError(
                f"the tools' parameters schemas cannot be enforced while decoding: {_first_line(exc)}",
                param="tools",
                code="invalid_json_schema",
            ) from exc
        return JsonConstraint(compiled, closing_ids=(), reports=False)

    def _compile(self, response_format: dict[str, Any] | None) -> Any:
        kind = (response_format or {}).get("type", "text")
        if kind == "text":
            return None
        if kind == "json_object":
            return self._compiler.compile_json_schema(
                JSON_OBJECT_SCHEMA, any_whitespace=False, strict_mode=False
            )
        if kind != "json_schema":
            raise UnsupportedParameterError(
                f"response_format type {kind!r} is not supported; accepted: 'text', "
                + ", ".join(map(repr, STRUCTURED_TYPES)),
                param="response_format.type",
            )
        schema, strict = schema_of(response_format or {})
        try:
            return self._compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, strict_mode=strict
            )
        except (RuntimeError, ValueError, TypeError) as exc:
            raise InvalidRequestError(
                f"response_format.json_schema.schema cannot be enforced while decoding: {_first_line(exc)}",
                param="response_format.json_schema.schema",
                code="invalid_json_schema",
            ) from exc


def for_model(model: Any, tokenizer: Any) -> StructuredOutput:
    """A :class:`StructuredOutput` sized to ``model``'s logits and stopping on its EOS ids."""
    from modelserver.decoding import eos_token_ids

    head = model.get_output_embeddings()
    vocab_size = int(head.weight.shape[0]) if head is not None else len(tokenizer)
    return StructuredOutput(tokenizer, vocab_size=vocab_size, stop_token_ids=eos_token_ids(model, tokenizer))


def schema_of(response_format: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The JSON Schema inside an OpenAI ``json_schema`` response format, and its ``strict`` flag."""
    wrapper = response_format.get("json_schema")
    schema = wrapper.get("schema") if isinstance(wrapper, dict) else None
    if not isinstance(schema, dict):
        raise InvalidRequestError(
            "response_format.json_schema.schema must be a JSON Schema object, e.g. "
            '{"type": "json_schema", "json_schema": {"name": "invoice", "schema": {"type": "object", ...}}}',
            param="response_format.json_schema.schema",
        )
    # Either way the answer validates against the schema; strict (the default here, unlike
    # OpenAI) also forbids keys the schema does not list, which keeps small models on track.
    return schema, bool(wrapper.get("strict", True)) if isinstance(wrapper, dict) else True


def completeness(constraint: Any, finish_reason: str) -> dict[str, str]:
    """What a constrained answer that ended with ``finish_reason`` tells the client about its JSON.

    ``{"status": "complete"}`` when the value is whole (it parses and matches the schema);
    otherwise ``{"status": "incomplete", "reason": ..., "message": ...}``.
    """
    if constraint.complete:
        return {"status": "complete"}
    reason = "length" if finish_reason == "length" else "cancelled"
    return {"status": "incomplete", "reason": reason, "message": INCOMPLETE_MESSAGES[reason]}


INCOMPLETE_MESSAGES: dict[str, str] = {
    "length": "max_tokens (or the model's context) ended the answer before its JSON was complete: "
    "the content does not parse; raise max_tokens",
    "cancelled": "the answer was cancelled before its JSON was complete: the content does not parse",
}


def _tokenizer_info(tokenizer: Any, *, vocab_size: int, stop_token_ids: list[int]) -> Any:
    """xgrammar's view of the vocabulary, with every added token made unusable (see the module doc)."""
    probe = xgr.TokenizerInfo.from_huggingface(
        tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids
    )
    added = {int(i) for i in getattr(tokenizer, "added_tokens_decoder", {})}
    encoded = [""] * vocab_size
    for token, index in tokenizer.get_vocab().items():
        if index < vocab_size and index not in added:
            encoded[index] = token
    return xgr.TokenizerInfo(
        encoded,
        vocab_type=probe.vocab_type,
        vocab_size=vocab_size,
        stop_token_ids=stop_token_ids,
        add_prefix_space=probe.add_prefix_space,
    )


def _allowed_ids(bitmask: torch.Tensor) -> set[int]:
    """The token ids a one-row xgrammar bitmask allows."""
    words = bitmask[0].tolist()
    return {w * 32 + b for w, word in enumerate(words) if word for b in range(32) if (word >> b) & 1}


def _single_token_ids(tokenizer: Any, pieces: Iterable[str]) -> list[int]:
    """The ids of the pieces that are one token in this vocabulary, in the pieces' order."""
    ids: list[int] = []
    for piece in pieces:
        encoded = tokenizer.encode(piece, add_special_tokens=False)
        if len(encoded) == 1 and int(encoded[0]) not in ids:
            ids.append(int(encoded[0]))
    return ids


def _first_line(exc: BaseException) -> str:
    """xgrammar's message without its ``[time] /project/cpp/file.cc:123:`` prefix."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _CPP_PREFIX.sub("", line)
