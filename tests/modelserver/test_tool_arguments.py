"""modelserver.tools.arguments: streamed arguments join to exactly what the whole call re-encodes to."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from modelserver.tools.arguments import Glm45Arguments, JsonArguments

SPACES = ["", "", " ", "\n", "\t", "  "]
ODD_TEXT = ["é", "猫", "\U0001f431", "\x07", "\n", '"', "\\", "/", "\u2028", "a b", "</tool_call>", "\x7f"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "bool", "null"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice([*ODD_TEXT, "x", "Paris", " "]) for _ in range(rng.randrange(6)))
    if kind == "int":
        return rng.choice([0, -1, 7, 12345678901234567890, rng.randrange(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -2.25, 1e-7, 3.0, 1.5e300, rng.uniform(-100, 100)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return random_object(rng, depth + 1)


def random_object(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    return {f"k{i}{rng.choice(ODD_TEXT)}": random_value(rng, depth) for i in range(rng.randrange(4))}


def written(rng: random.Random, value: Any) -> str:
    """``value`` as a model (or grammar) might write it: odd spacing, optional escapes, raw control chars."""
    space = rng.choice(SPACES)
    if isinstance(value, dict):
        items = [
            f"{space}{written(rng, k)}{rng.choice(SPACES)}:{space}{written(rng, v)}" for k, v in value.items()
        ]
        return "{" + ",".join(items) + rng.choice(SPACES) + "}"
    if isinstance(value, list):
        return "[" + ",".join(f"{space}{written(rng, v)}" for v in value) + rng.choice(SPACES) + "]"
    if isinstance(value, str):
        return '"' + "".join(written_char(rng, c) for c in value) + '"'
    if isinstance(value, float) and rng.random() < 0.3:
        return f"{value:E}"  # 1.500000E+300: another spelling of a number
    return json.dumps(value)


def written_char(rng: random.Random, char: str) -> str:
    if char in '"\\':
        return "\\" + char
    roll = rng.random()
    if roll < 0.25:  # \uXXXX, as a surrogate pair beyond the BMP
        encoded = char.encode("utf-16-be")
        units = [int.from_bytes(encoded[i : i + 2], "big") for i in range(0, len(encoded), 2)]
        return "".join(f"\\u{unit:04x}" for unit in units)
    if roll < 0.35 and char == "/":
        return "\\/"
    return char  # raw, control characters included (json.loads(strict=False) reads them)


def streamed(writer: JsonArguments | Glm45Arguments, text: str, rng: random.Random) -> list[str]:
    pieces: list[str] = []
    position = 0
    while position < len(text) and not (writer.done or writer.failed):
        size = rng.choice([1, 1, 2, 3, 5, 11])
        pieces.append(writer.feed(text[position : position + size]))
        position += size
    return pieces


@pytest.mark.parametrize("seed", range(300))
def test_json_fragments_join_to_the_whole_value_re_encoded(seed: int) -> None:
    rng = random.Random(seed)
    raw = written(rng, random_object(rng))
    writer = JsonArguments()
    pieces = streamed(writer, raw + "}</tool_call>", rng)
    assert writer.done and not writer.failed
    assert "".join(pieces) == json.dumps(json.loads(raw, strict=False), ensure_ascii=False)
    json.loads("".join(pieces))  # strict JSON: raw control characters came out escaped


def test_json_arguments_say_where_they_end() -> None:
    writer = JsonArguments()
    assert writer.feed('{"setup": "Why') == '{"setup": "Why'
    assert writer.feed(' cats?",\n"n": 1.50') == ' cats?", "n": '
    assert writer.feed("}}</tool_call> after") == "1.5}"  # a number is written once it ends
    assert writer.done and writer.rest == "}</tool_call> after"


@pytest.mark.parametrize("text", ['"not an object"', "[1]", '{"a": \\x}', '{"a": "\\q"}', '{"a": tru e}'])
def test_text_that_cannot_be_arguments_fails(text: str) -> None:
    writer = JsonArguments()
    writer.feed(text)
    assert writer.failed and not writer.done


def test_a_lone_escaped_surrogate_is_read_as_json_loads_reads_it() -> None:
    raw = '{"a": "\\ud83dx\\ud83d\\u0041\\udc31"}'
    writer = JsonArguments()
    assert writer.feed(raw) == json.dumps(json.loads(raw), ensure_ascii=False)


GLM45_PROPERTIES = {"city": {"type": "string"}, "days": {"type": "integer"}, "where": {"type": "object"}}


@pytest.mark.parametrize("seed", range(20))
def test_glm45_pairs_join_to_the_json_object(seed: int) -> None:
    rng = random.Random(seed)
    text = (
        f"{rng.choice(SPACES)}<arg_key>city</arg_key>{rng.choice(SPACES)}<arg_value> Pa<ri>s\t</arg_value>"
        f"{rng.choice(SPACES)}<arg_key>days</arg_key><arg_value>3</arg_value>"
        '<arg_key>where</arg_key><arg_value>{"lat":1.0,"x":"\x07"}</arg_value>'
        f"{rng.choice(SPACES)}</tool_call>more"
    )
    writer = Glm45Arguments(GLM45_PROPERTIES)
    pieces = streamed(writer, text, rng)
    assert writer.done and writer.rest.startswith("</tool_call>")
    assert "".join(pieces) == json.dumps(
        {"city": "Pa<ri>s", "days": 3, "where": {"lat": 1.0, "x": "\x07"}}, ensure_ascii=False
    )
    assert len([p for p in pieces if p]) > 2  # the key goes out before its value, pair by pair


def test_glm45_without_arguments_is_an_empty_object() -> None:
    writer = Glm45Arguments({})
    assert writer.feed("</tool_call>") == "{}" and writer.done


def test_glm45_text_between_pairs_fails() -> None:
    writer = Glm45Arguments(GLM45_PROPERTIES)
    writer.feed("<arg_key>city</arg_key><arg_value>x</arg_value> and then")
    assert writer.failed
