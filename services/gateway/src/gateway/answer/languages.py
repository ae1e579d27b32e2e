"""The reasoner's languages: a cascade question in a language it writes badly goes to vision instead.

A reasoner declares the languages it answers well in ``GATEWAY_REASONER_LANGUAGES``
(the default, ``en``, is the embedded SmolLM2-135M, which writes English; GLM-4 chat
writes ``zh,en``; ``*`` trusts it with any). The gateway knows the reasoner only by URL,
so the declaration lives beside that URL, in the gateway's settings, and any
OpenAI-compatible reasoner (vLLM, SGLang) gets one without a change on its side.

A question the cascade would send to a reasoner that cannot write its language is
answered by vision directly: the route becomes ``direct`` with ``route_reason``
``reasoner_language`` and a notice saying why. The same holds when the image's text (the
captions' text lines) is in a language the reasoner cannot read: SmolLM2 asked in English
about a Chinese screen cannot quote 待补充地址, it loops on digits instead. A question with
no image still goes to the reasoner (there is no vision answer to give instead), and so
does a tools request's route (``RouteDecision.final``): only a model that calls tools can
answer it (gateway.answer.tools).
"""

from __future__ import annotations

import re
from typing import Literal

from gateway.answer.prompts import split_caption
from gateway.answer.route_choice import RouteDecision

Language = Literal["zh", "en"]
ANY_LANGUAGE = "*"
LANGUAGES: tuple[str, ...] = ("zh", "en", ANY_LANGUAGE)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_NAMES = {"zh": ("中文", "Chinese"), "en": ("英文", "English")}


def question_language(text: str) -> Language:
    """``zh`` for a question with Chinese characters in it, else ``en``."""
    return "zh" if _CJK.search(text) else "en"


def evidence_language(captions: list[str]) -> Language:
    """``zh`` when the captions' text lines hold more Chinese characters than English words."""
    lines = " ".join(line for caption in captions for line in split_caption(caption)[1])
    cjk, words = len(_CJK.findall(lines)), len(_LATIN_WORD.findall(lines))
    return "zh" if cjk >= 2 and cjk >= words else "en"


def gate_language(decision: RouteDecision, question: str, languages: tuple[str, ...]) -> RouteDecision:
    """``decision``, or ``direct`` when the cascade's reasoner does not write the question's language."""
    if decision.route != "cascade" or decision.reason == "no_image" or decision.final:
        return decision
    if ANY_LANGUAGE in languages:
        return decision
    if question_language(question) in languages:
        return decision
    return RouteDecision("direct", "reasoner_language", decision.keyword)


def gate_evidence(decision: RouteDecision, captions: list[str], languages: tuple[str, ...]) -> RouteDecision:
    """``decision``, or ``direct`` when the reasoner cannot read the language of the image's text."""
    if decision.route != "cascade" or not captions or decision.final or ANY_LANGUAGE in languages:
        return decision
    if evidence_language(captions) in languages:
        return decision
    return RouteDecision("direct", "reasoner_language", decision.keyword)


def _known(languages: tuple[str, ...]) -> tuple[str, str]:
    return ("、".join(_NAMES[lang][0] for lang in languages if lang in _NAMES),
            ", ".join(_NAMES[lang][1] for lang in languages if lang in _NAMES))


def language_notice(question: str, languages: tuple[str, ...]) -> str:
    """Why vision answered: the question's language and the ones the reasoner writes."""
    asked_zh, asked_en = _NAMES[question_language(question)]
    known_zh, known_en = _known(languages)
    return (
        f"推理模型只擅长{known_zh}，这个{asked_zh}问题由视觉模型根据图中内容直接回答 / "
        f"the reasoner writes {known_en} only, so vision answered this {asked_en} question directly"
    )


def evidence_notice(captions: list[str], languages: tuple[str, ...]) -> str:
    """Why vision answered: the language of the image's text and the ones the reasoner reads."""
    text_zh, text_en = _NAMES[evidence_language(captions)]
    known_zh, known_en = _known(languages)
    return (
        f"推理模型只擅长{known_zh}，图中文字是{text_zh}，由视觉模型根据图中内容直接回答 / "
        f"the reasoner reads {known_en} only and the image's text is {text_en}, so vision answered directly"
    )
