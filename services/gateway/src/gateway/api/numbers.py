"""Every number a client sends is range-checked at admission: 64-bit integers, finite floats.

JSON has no size limit on numbers, Python has none on ``int``, but everything after the
gateway does: orjson (the upstream request body) refuses integers past 64 bits, torch
seeds are 64-bit, and ``Infinity``/``NaN`` would leave as ``null``. A number out of that
range anywhere in the request (``seed``, ``max_tokens``, deep inside
``response_format.json_schema``, any extra field passed on) is a 400 naming where it
is, never a 500 while the upstream request is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from gateway.errors import NumberOutOfRangeError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _numbers(payload: Any, path: str) -> Iterator[tuple[str, int | float]]:
    """(dotted path, number) of every number in a JSON-like tree; iterative, so depth costs no stack."""
    stack: list[tuple[str, Any]] = [(path, payload)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, bool):
            continue  # bool is an int subclass, and always in range
        if isinstance(value, int | float):
            yield where, value
        elif isinstance(value, dict):
            stack.extend((f"{where}.{key}" if where else str(key), item) for key, item in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{where}.{i}" if where else str(i), item) for i, item in enumerate(value))


def _problem(value: int | float) -> str | None:
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        # Never format the value itself: a 5,000-digit integer cannot even be printed.
        return (
            f"an integer of {value.bit_length()} bits is out of range; "
            f"integers must lie between {INT64_MIN} and {INT64_MAX}"
        )
    return None if math.isfinite(value) else "a number must be finite (not Infinity or NaN)"


def check_numbers(payload: Any, *, path: str = "") -> None:
    """Raise :class:`NumberOutOfRangeError` for the first out-of-range number, naming its field."""
    for where, value in _numbers(payload, path):
        problem = _problem(value)
        if problem is not None:
            raise NumberOutOfRangeError(f"{where or 'body'}: {problem}", param=where or None)
