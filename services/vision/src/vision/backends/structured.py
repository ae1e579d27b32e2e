"""``response_format`` for ocr-lite: the key–value fields it read, as a JSON object.

* ``{"type": "json_object"}`` → every pair read, keys and values exactly as read;
* ``{"type": "json_schema", ...}`` → the schema's top-level properties, each filled from
  the pair whose key matches it (by the field table's aliases, or by the key as read);
  properties it cannot find are ``null``; a schema none of whose properties it can find,
  or that is not an object schema, is refused naming what is supported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from modelserver.errors import UnsupportedParameterError

from vision.backends.answering import ImageReading
from vision.backends.fields import FIELDS, KeyValue, extract_pairs, field_asked, find_field
from vision.backends.ocr import OcrLine
from vision.backends.text import compact

SUPPORTED = ('"text", "json_object" (the key-value fields read from the image) and "json_schema" '
             "(an object schema whose properties name fields on the image, e.g. order_number/订单号, "
             "amount/金额, date/日期, phone/电话, status/状态, address/地址, invoice_number/发票号码)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _unsupported(message: str) -> UnsupportedParameterError:
    return UnsupportedParameterError(f"{message}; ocr-lite supports response_format types {SUPPORTED}",
                                     param="response_format")


def _schema_of(response_format: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema inside an OpenAI ``json_schema`` response format (or refuse it)."""
    wrapper = response_format.get("json_schema")
    schema = wrapper.get("schema") if isinstance(wrapper, dict) else None
    if not isinstance(schema, dict):
        raise _unsupported("response_format json_schema needs json_schema.schema (an object schema)")
    properties = schema.get("properties")
    if schema.get("type", "object") != "object" or not isinstance(properties, dict) or not properties:
        raise _unsupported("ocr-lite can only fill an object schema with top-level properties")
    return schema


def check_response_format(response_format: dict[str, Any] | None) -> None:
    """Refuse, before any OCR, a response format ocr-lite can never honour."""
    kind = (response_format or {}).get("type", "text")
    if kind not in STRUCTURED_WRITERS and kind != "text":
        raise _unsupported(f"response_format type {kind!r} is not supported")
    if kind == "json_schema":
        _schema_of(response_format or {})


def _all_pairs(readings: Sequence[ImageReading]) -> list[KeyValue]:
    return [pair for reading in readings for pair in extract_pairs(reading.rows)]


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """``value`` as the property's JSON type: numbers parsed from "¥1,299.00", else the text as read."""
    kind = schema.get("type")
    if kind in ("number", "integer"):
        match = _NUMBER.search(value)
        if match is None:
            return None
        number = float(match.group(0).replace(",", ""))
        return int(number) if kind == "integer" else number
    return value


def _find_property(name: str, schema: dict[str, Any], readings: Sequence[ImageReading],
                   pairs: Sequence[KeyValue]) -> KeyValue | None:
    """The pair a property names: via its name/title/description aliases, else a key read literally."""
    hints = [name.replace("_", " "), str(schema.get("title", "")), str(schema.get("description", ""))]
    for hint in hints:
        field = field_asked(hint) if hint else None
        if field is not None:
            for reading in readings:
                pair = find_field(reading.rows, field)
                if pair is not None:
                    return pair
    wanted = compact(name)
    return next((pair for pair in pairs if wanted and (wanted in compact(pair.key)
                                                         or compact(pair.key) in wanted)), None)


def write_json_object(
    response_format: dict[str, Any], readings: Sequence[ImageReading]
) -> tuple[str, list[OcrLine]]:
    """Every key–value pair read, as a JSON object (first occurrence of a key wins)."""
    result: dict[str, str] = {}
    lines: list[OcrLine] = []
    for pair in _all_pairs(readings):
        if pair.key not in result:
            result[pair.key] = pair.value
            lines.extend(pair.lines)
    return json.dumps(result, ensure_ascii=False), lines


def write_json_schema(
    response_format: dict[str, Any], readings: Sequence[ImageReading]
) -> tuple[str, list[OcrLine]]:
    """The schema's top-level properties filled from the fields read; refuse if none is found."""
    schema = _schema_of(response_format)
    pairs = _all_pairs(readings)
    result: dict[str, Any] = {}
    lines: list[OcrLine] = []
    for name, prop in schema["properties"].items():
        prop = prop if isinstance(prop, dict) else {}
        pair = _find_property(name, prop, readings, pairs)
        result[name] = _coerce(pair.value, prop) if pair else None
        if pair:
            lines.extend(pair.lines)
    if not lines:
        known = ", ".join(pair.key for pair in pairs) or "none"
        raise _unsupported(
            f"none of the schema's properties ({', '.join(schema['properties'])}) match a field read "
            f"from the image (keys read: {known}; known fields: {', '.join(FIELDS)})"
        )
    return json.dumps(result, ensure_ascii=False), lines


StructuredWriter = Callable[[dict[str, Any], Sequence[ImageReading]], tuple[str, list[OcrLine]]]

# response_format type → writer ("text" is the ordinary answer and has no writer).
STRUCTURED_WRITERS: dict[str, StructuredWriter] = {
    "json_object": write_json_object,
    "json_schema": write_json_schema,
}
