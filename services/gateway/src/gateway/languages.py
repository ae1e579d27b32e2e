"""The reasoner's languages: a cascade question in a language it writes badly goes to vision instead.

A reasoner declares the languages it answers well in ``GATEWAY_REASONER_LANGUAGES``
(the default, ``en``, is the embedded SmolLM2-135M, which writes English; GLM-4 chat
writes ``zh,en``; ``*`` trusts it with any). The gateway knows the reasoner only by URL,
so the declaration lives beside that URL, in the gateway's settings, and any
OpenAI-compatible reasoner (vLLM, SGLang) gets one without a change on its side.

A question the cascade would send to a reasoner that cannot write its language is
answered by vision directly: the route becomes ``direct`` with ``route_reason``
``reasoner_language`` and a notice saying why. A question with no image still goes to the
reasoner (there is no vision answer to give instead).
"""

from __future__ import annotations

import re
from typing import Literal

from gateway.routing import RouteDecision

Language = Literal["zh", "en"]
ANY_LANGUAGE = "*"
LANGUAGES: tuple[str, ...] = ("zh", "en", ANY_LANGUAGE)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NAMES = {"zh": ("中文", "Chinese"), "en": ("英文", "English")}


def question_language(text: str) -> Language:
    """``zh`` for a question with Chinese characters in it, else ``en``."""
    return "zh" if _CJK.search(text) else "en"


def gate_language(decision: RouteDecision, question: str, languages: tuple[str, ...]) -> RouteDecision:
    """``decision``, or ``direct`` when the cascade's reasoner does not write the question's language."""
    if decision.route != "cascade" or decision.reason == "no_image" or ANY_LANGUAGE in languages:
        return decision
    if question_language(question) in languages:
        return decision
    return RouteDecision("direct", "reasoner_language", decision.keyword)


def language_notice(question: str, languages: tuple[str, ...]) -> str:
    """Why vision answered: the question's language and the ones the reasoner writes."""
    asked_zh, asked_en = _NAMES[question_language(question)]
    known_zh = "、".join(_NAMES[lang][0] for lang in languages if lang in _NAMES)
    known_en = ", ".join(_NAMES[lang][1] for lang in languages if lang in _NAMES)
    return (
        f"推理模型只擅长{known_zh}，这个{asked_zh}问题由视觉模型根据图中内容直接回答 / "
        f"the reasoner writes {known_en} only, so vision answered this {asked_en} question directly"
    )
