"""Which request fields FlashSight takes, ignores on purpose, or refuses: nothing passes unseen.

The policy every service shares (the request models forbid unknown keys, and this module
explains each refusal):

1. **Implemented** fields are the request model's own fields (``ChatCompletionRequest`` and
   a service's subclass of it, e.g. the gateway's ``route``).
2. **Ignored** fields (:data:`IGNORED_FIELDS`) are accepted and dropped, each for a stated
   reason: they ask nothing of the answer (an end-user id, tags for stored completions).
3. **Refused** fields (:data:`REFUSED_FIELDS`) are OpenAI features FlashSight does not
   implement. A value that asks for nothing (``logprobs: false``, ``frequency_penalty: 0``,
   ``modalities: ["text"]``) is accepted, since SDKs send such defaults; any other value is
   a 400 naming the field and why.
4. Anything else is unknown and a 400 naming it: a typo or a vendor extension must not be
   silently dropped either.

docs/api.md lists the same tables for callers; a test keeps the two in step.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

DOCS = "docs/api.md"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a field is refused, and the values that ask for nothing (accepted, then dropped)."""

    reason: str
    neutral: tuple[Any, ...] = (None,)

    def accepts(self, value: Any) -> bool:
        # ``0 == False`` in Python: compare types too, so ``logprobs: 0`` is not taken for false.
        return any(value == ok and type(value) is type(ok) for ok in self.neutral) or value is None


_NO_PENALTY = (None, 0, 0.0)
_SAMPLING_ONLY = "the decoders implement temperature, top_p, seed, stop and max_tokens only"

IGNORED_FIELDS: Mapping[str, str] = {
    "user": "an end-user id for OpenAI's abuse monitoring; FlashSight keeps no per-user records "
    "(API keys scope rate limits)",
    "safety_identifier": "the newer name of `user`; ignored for the same reason",
    "metadata": "tags for stored completions; FlashSight stores no completions",
    "prompt_cache_key": "a routing hint for OpenAI's prompt cache; there is no prompt-prefix cache "
    "to route to",
    "prompt_cache_retention": "how long OpenAI keeps a cached prompt prefix; there is no prompt-prefix cache",
}
"""Top-level fields accepted and dropped, each with the reason (docs/api.md shows them)."""

REFUSED_FIELDS: Mapping[str, Refusal] = {
    "logprobs": Refusal("token log-probabilities are not returned", (None, False)),
    "top_logprobs": Refusal("token log-probabilities are not returned", (None, 0)),
    "audio": Refusal("answers are text only; no audio is produced"),
    "modalities": Refusal("answers are text only", (None, ["text"])),
    "prediction": Refusal("predicted outputs are not implemented"),
    "web_search_options": Refusal("FlashSight does not search the web"),
    "frequency_penalty": Refusal(_SAMPLING_ONLY, _NO_PENALTY),
    "presence_penalty": Refusal(_SAMPLING_ONLY, _NO_PENALTY),
    "repetition_penalty": Refusal(_SAMPLING_ONLY, (None, 1, 1.0)),
    "logit_bias": Refusal(_SAMPLING_ONLY, (None, {})),
    "top_k": Refusal(_SAMPLING_ONLY, (None, -1, 0)),
    "min_p": Refusal(_SAMPLING_ONLY, _NO_PENALTY),
    "functions": Refusal("the deprecated function-calling API is not served; send `tools`"),
    "function_call": Refusal(
        "the deprecated function-calling API is not served; send `tool_choice`/`tool_calls`"
    ),
    "reasoning_effort": Refusal(
        "thinking is switched on or off with chat_template_kwargs.enable_thinking, not graded by effort"
    ),
    "verbosity": Refusal("answer length is set with max_tokens and the prompt"),
    "service_tier": Refusal("there is one service tier", (None, "auto", "default")),
    "store": Refusal("FlashSight never stores completions", (None, False)),
}
"""OpenAI (and common vLLM) fields FlashSight does not implement: 400 unless the value asks for nothing."""


def drop_accepted_extras(data: Any, *, known: Collection[str]) -> Any:
    """``data`` without its ignored fields and its refused fields that ask for nothing.

    What is left beyond ``known`` is refused by the model (``extra="forbid"``), and
    :func:`refusal_message` says why.
    """
    if not isinstance(data, dict):
        return data
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key in known:
            kept[key] = value
        elif key in IGNORED_FIELDS or (
            (refusal := REFUSED_FIELDS.get(key)) is not None and refusal.accepts(value)
        ):
            continue
        else:
            kept[key] = value
    return kept


def refusal_message(field: str) -> str:
    """Why ``field`` (a key the request model does not take) is refused."""
    refusal = REFUSED_FIELDS.get(field)
    if refusal is not None:
        allowed = ", ".join(_show(v) for v in refusal.neutral if v is not None)
        leave = f"leave it out{f' or send {allowed}' if allowed else ''}"
        return f"not supported: {refusal.reason} ({leave}; see {DOCS})"
    return (
        f"unknown field; FlashSight refuses fields it does not implement rather than ignore them (see {DOCS})"
    )


def _show(value: Any) -> str:
    return json.dumps(value)
