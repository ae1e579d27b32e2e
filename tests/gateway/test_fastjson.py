"""gateway.fastjson: orjson on the hot path, UTF-8 out, the standard library's errors in."""

from __future__ import annotations

import json

import pytest
from gateway import fastjson


def test_dumps_is_compact_utf8_text_and_loads_round_trips() -> None:
    text = fastjson.dumps({"问": "订单", "n": [1, 2]})
    assert text == '{"问":"订单","n":[1,2]}' and fastjson.loads(text) == {"问": "订单", "n": [1, 2]}


def test_bad_json_is_a_standard_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        fastjson.loads("{nope")


def test_the_response_renders_utf8_bytes() -> None:
    assert fastjson.FastJSONResponse({"a": "订"}).body == '{"a":"订"}'.encode()
