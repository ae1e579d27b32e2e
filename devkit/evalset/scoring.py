"""Scoring an answer: every fact named, none of the absent ones claimed, in the question's language?"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from devkit.evalset.cases import Case, Question

_DROP = re.compile(r"[\s:：,，.。]+")
_CJK = re.compile(r"[\u3400-\u9fff]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def _norm(text: str) -> str:
    return _DROP.sub("", unicodedata.normalize("NFKC", text).lower())


def in_language(answer: str, lang: str, quoted: Iterable[str] = ()) -> bool:
    """Whether ``answer`` is written in ``lang``, not counting what it quotes of the screen.

    The screen's Chinese runs and English words are taken out first (an English answer
    quotes a Chinese screen, and the other way round). Chinese: at least 10 Chinese
    characters of its own, more of them than English words; English: at least 5 English
    words of its own, more of them than Chinese characters.
    """
    screen = unicodedata.normalize("NFKC", " ".join(quoted))
    own = unicodedata.normalize("NFKC", answer)
    for run in sorted(_CJK_RUN.findall(screen), key=len, reverse=True):
        own = own.replace(run, " ")
    screen_words = {w.lower() for w in _LATIN_WORD.findall(screen)}
    words = sum(w.lower() not in screen_words for w in _LATIN_WORD.findall(own))
    cjk = len(_CJK.findall(own))
    if lang == "zh":
        return cjk >= 10 and cjk > words
    return words >= 5 and words > cjk


@dataclass(frozen=True, slots=True)
class Score:
    """How one answer fared."""

    facts_named: int
    facts_total: int
    claims_absent: bool
    right_language: bool

    @property
    def passed(self) -> bool:
        """Every fact named, nothing absent claimed, in the question's language."""
        return self.facts_named == self.facts_total and not self.claims_absent and self.right_language


def score(case: Case, question: Question, answer: str) -> Score:
    """``answer`` to ``question`` about ``case``'s screen, scored."""
    text = _norm(answer)
    named = sum(_norm(fact) in text for fact in question.facts)
    claims = any(_norm(word) in text for word in question.absent)
    right_language = in_language(answer, question.lang, (*case.screen, *question.facts))
    return Score(named, len(question.facts), claims, right_language)
