"""ocr-lite on the evaluation set (devkit/evalset): every answer names its facts, in the question's language.

The screenshots are drawn, read by the real RapidOCR and answered by the real answerers,
so a change that makes any answer drop a fact, claim a problem the screen does not show,
or switch language fails here. Today every question passes on ocr-lite; this holds it
there. The per-route figures (ocr-lite and the cascade through SmolLM2) come from
``bench/grounded_answers.py`` and are in docs/models.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vision.backends.answering import ImageReading, answer_question
from vision.backends.ocr_lite import OcrLiteBackend
from vision.config import VisionSettings

from devkit.evalset.cases import CASES, SEED, Case, Question
from devkit.evalset.scoring import score
from devkit.screens import as_data_url

QUESTIONS = [(case, question) for case in CASES for question in case.questions]


@pytest.fixture(scope="module")
def backend() -> Iterator[OcrLiteBackend]:
    made = OcrLiteBackend(VisionSettings())
    made.load()
    yield made


@pytest.fixture(scope="module")
def readings(backend: OcrLiteBackend) -> dict[str, ImageReading]:
    return {case.name: backend.read_image(as_data_url(case.png())) for case in CASES}


@pytest.mark.parametrize(("case", "question"), QUESTIONS,
                         ids=[f"{c.name}-{q.lang}-{i}" for i, (c, q) in enumerate(QUESTIONS)])
def test_every_answer_names_its_facts_in_the_questions_language(
    readings: dict[str, ImageReading], case: Case, question: Question
) -> None:
    answer = answer_question(question.text, [readings[case.name]]).text
    result = score(case, question, answer)
    assert result.passed, f"{result}\n{answer}"


def test_the_seed_question_names_the_blocking_facts_and_what_to_do(readings: dict[str, ImageReading]) -> None:
    answer = answer_question("为什么我的订单还没有发货?", [readings[SEED.name]]).text
    assert "状态:待补充地址" in answer and "银行卡验证失败ERR_1003" in answer
    assert "· 补充地址" in answer and "错误码 ERR_1003" in answer
