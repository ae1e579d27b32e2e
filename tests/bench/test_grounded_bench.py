"""The answer-quality bench's own logic: loop detection and the per-route × language table."""

from __future__ import annotations

import pytest

from bench.grounded_answers import Result, loops, report
from devkit.evalset.cases import SEED
from devkit.evalset.scoring import score


def test_loops_are_a_twelve_token_span_said_twice() -> None:
    assert loops("The conversation is about a 900×420 landscape image, which is a thing. " * 2)
    assert not loops("银行卡验证失败 ERR_1003。请处理银行卡验证失败 ERR_1003。")


def test_the_table_has_a_row_per_route_and_language_with_passes_and_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    zh, en = SEED.questions[0], SEED.questions[1]
    good = "根据图中的文字，问题在于：状态:待补充地址，银行卡验证失败ERR_1003。请补充地址。"
    results = [
        Result(SEED.name, "direct", zh, good, "forced", score(SEED, zh, good), False),
        Result(SEED.name, "cascade", en, "The image is 900×470.", "forced",
               score(SEED, en, "The image is 900×470."), False),
        Result(SEED.name, "cascade", zh, good, "reasoner_language", score(SEED, zh, good), False),
    ]
    report(results)
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows[("direct", "zh")][:2] == ["1/1", "100%"]
    assert rows[("cascade", "en")][:2] == ["0/1", "0%"]
    assert rows[("cascade", "en")][3] == "1"  # it talks about the picture's size
    assert rows[("cascade", "zh")][2] == "1"  # sent to vision by the language gate
