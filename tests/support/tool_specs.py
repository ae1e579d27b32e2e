"""Tools offered in the tool-calling integration tests, and the check every answered call must pass."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

# Bounded values: random-weight checkpoints would otherwise write strings until max_tokens.
TIME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "utc": {"type": "boolean"}},
    "required": ["city", "utc"],
    "additionalProperties": False,
}


def function_tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """One entry of a request's ``tools``: a function with its JSON-schema parameters."""
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


def assert_valid_calls(calls: Any, schemas: Mapping[str, dict[str, Any]], *, at_least: int = 1) -> None:
    """Every call names an offered function, has an OpenAI id, and its arguments match the schema."""
    assert calls is not None and len(calls) >= at_least
    for call in calls:
        arguments = json.loads(call.function.arguments)  # must never raise
        jsonschema.validate(arguments, schemas[call.function.name])
        assert call.id.startswith("call_") and call.type == "function"
