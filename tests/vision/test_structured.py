from __future__ import annotations

import json

import pytest
from modelserver.errors import UnsupportedParameterError
from vision.backends.answering import ImageReading
from vision.backends.facts import ImageFacts
from vision.backends.ocr import group_rows
from vision.backends.structured import check_response_format, write_json_object, write_json_schema

from tests.vision.lines import ORDER_LINES

ORDER = ImageReading(ImageFacts(750, 1000, ()), group_rows(ORDER_LINES))


def _schema(properties: dict[str, object]) -> dict[str, object]:
    return {"type": "json_schema", "json_schema": {"name": "order",
                                                   "schema": {"type": "object", "properties": properties}}}


def test_json_object_holds_every_pair_with_keys_and_values_as_read() -> None:
    text, lines = write_json_object({"type": "json_object"}, [ORDER])
    assert json.loads(text) == {
        "订单状态": "待发货", "订单号": "2024052011223344", "下单时间": "2024-05-2011:22:33",
        "实付金额": "¥1,299.00", "收件人": "张三",
    }
    assert lines


def test_json_object_of_an_image_without_text_is_empty() -> None:
    assert write_json_object({"type": "json_object"}, [ImageReading(ImageFacts(1, 1, ()), [])])[0] == "{}"


def test_json_schema_properties_are_filled_by_fuzzy_key_and_typed() -> None:
    fmt = _schema({
        "order_number": {"type": "string"},
        "total": {"type": "number"},
        "订单状态": {"type": "string"},
        "coupon": {"type": "string"},
    })
    text, _ = write_json_schema(fmt, [ORDER])
    assert json.loads(text) == {"order_number": "2024052011223344", "total": 1299.0, "订单状态": "待发货",
                                "coupon": None}


def test_a_property_can_be_named_by_its_description() -> None:
    fmt = _schema({"x": {"type": "string", "description": "the order number"}})
    assert json.loads(write_json_schema(fmt, [ORDER])[0]) == {"x": "2024052011223344"}


def test_a_schema_with_no_property_on_the_image_is_refused_naming_what_is_supported() -> None:
    with pytest.raises(UnsupportedParameterError) as caught:
        write_json_schema(_schema({"cat_count": {"type": "integer"}}), [ORDER])
    assert "cat_count" in caught.value.message
    assert "json_object" in caught.value.message
    assert caught.value.param == "response_format"


@pytest.mark.parametrize("fmt", [
    {"type": "xml"},
    {"type": "json_schema", "json_schema": {"name": "x"}},
    {"type": "json_schema", "json_schema": {"schema": {"type": "array", "items": {}}}},
])
def test_formats_it_can_never_honour_are_refused_before_any_ocr(fmt: dict[str, object]) -> None:
    with pytest.raises(UnsupportedParameterError):
        check_response_format(fmt)


def test_supported_formats_pass_the_check() -> None:
    check_response_format(None)
    check_response_format({"type": "text"})
    check_response_format({"type": "json_object"})
    check_response_format(_schema({"a": {}}))
