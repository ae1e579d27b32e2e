"""The shared log line shape: JSON or text, the request id on every line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flashsight_common.logs import JsonFormatter, configure_logging
from flashsight_common.requestid import RequestIdLogFilter, request_id_var


def test_text_and_json_formats_are_the_two_choices() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging("info", "text")
        assert "[%(request_id)s]" in str(root.handlers[0].formatter._fmt)
        with pytest.raises(KeyError):
            configure_logging("info", "xml")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def log_as_json(
    logger_name: str, message: str, *args: object, fields: dict[str, object]
) -> dict[str, object]:
    """The JSON line one ``logger.info`` writes through the shared formatter and filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info(message, *args, extra={"fields": fields})
    finally:
        logger.removeHandler(handler)
    line: dict[str, object] = json.loads(stream.getvalue())
    return line


def test_json_lines_carry_the_request_id_and_the_access_fields() -> None:
    token = request_id_var.set("abc-123")
    try:
        line = log_as_json("modelserver.test_json", "POST /v1/chat/completions 200",
                           fields={"status": 200, "latency_ms": 12.5})
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "abc-123" and line["status"] == 200 and line["latency_ms"] == 12.5
    assert {"ts", "level", "logger", "message"} <= set(line)


def test_structured_fields_never_overwrite_the_fixed_ones_and_outside_a_request_the_id_is_a_dash() -> None:
    line = log_as_json("flashsight.test_fixed_fields", "ready: %s", "yes",
                       fields={"request_id": "forged", "level": "x", "n": 1})
    assert line["request_id"] == "-" and line["level"] == "info" and line["n"] == 1
    assert line["message"] == "ready: yes" and line["logger"] == "flashsight.test_fixed_fields"
