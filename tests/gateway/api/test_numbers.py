"""Every number a client sends is range-checked: 64-bit integers, finite floats, the field named."""

from __future__ import annotations

import pytest
from gateway.api.numbers import INT64_MAX, INT64_MIN, check_numbers
from gateway.errors import NumberOutOfRangeError


def test_numbers_inside_the_64_bit_range_pass() -> None:
    check_numbers({"seed": INT64_MAX, "n": INT64_MIN, "t": 0.5, "flag": True, "deep": [{"x": [1, 2.0]}]})


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"seed": INT64_MAX + 1}, "seed"),
        ({"seed": INT64_MIN - 1}, "seed"),
        (
            {"response_format": {"json_schema": {"schema": {"enum": [1, 10**5000]}}}},
            "response_format.json_schema.schema.enum.1",
        ),
        ({"budget": float("inf")}, "budget"),
        ({"budget": float("nan")}, "budget"),
    ],
)
def test_an_out_of_range_number_is_a_400_naming_its_path(payload: object, param: str) -> None:
    with pytest.raises(NumberOutOfRangeError) as refused:
        check_numbers(payload)
    assert refused.value.param == param and refused.value.status() == 400
    assert refused.value.message.startswith(f"{param}: ")


def test_a_huge_integer_is_described_by_its_size_never_printed() -> None:
    with pytest.raises(NumberOutOfRangeError) as refused:
        check_numbers({"seed": 10**5000})  # str() of it would raise: past Python's digit limit
    assert "16610 bits" in refused.value.message


def test_a_deeply_nested_schema_costs_no_recursion() -> None:
    payload: object = 1
    for _ in range(5000):
        payload = [payload]
    check_numbers(payload)
