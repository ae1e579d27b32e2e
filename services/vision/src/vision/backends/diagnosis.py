"""Answering "why / what is wrong / what should I do" from what the screen itself says.

The answer quotes the rows that say something is wrong or pending (see
:mod:`~vision.backends.alerts`), then what the screen asks the user to do, then the
fields that identify the case (status, amount, date; the order or invoice number when the
question is about one). Nothing is added that the screen does not say: where it names a
problem but no remedy, the answer says so and points at the error code to quote. In an
English answer, Chinese quotes keep their words and get a gloss in brackets when every
word is known (:mod:`~vision.backends.gloss`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vision.backends.alerts import AlertRow, find_alerts
from vision.backends.fields import FIELDS, KeyValue, find_field
from vision.backends.gloss import gloss
from vision.backends.intents import Intent
from vision.backends.ocr import OcrLine, row_text
from vision.backends.reading import Answer, ImageReading
from vision.backends.text import mentions

# Fields that identify the case, in the order the answer names them.
_CONTEXT_FIELDS = ("status", "amount", "date")
_NUMBER_FIELDS = {"order_number": ("订单", "order"), "invoice_number": ("发票", "invoice")}
_MAX_ROWS_LISTED = 30
_FAILURE = re.compile(r"失败|错误|fail|error|declined|denied|rejected", re.IGNORECASE)


def _quote(text: str, lang: str) -> str:
    if lang == "zh":
        return text
    english = gloss(text)
    return f"{text} ({english})" if english else text


def _bullets(texts: Sequence[str], lang: str) -> list[str]:
    mark = "· " if lang == "zh" else "- "
    return [f"{mark}{_quote(text, lang)}\n" for text in texts]


def _todos(alerts: Sequence[AlertRow], lang: str) -> list[str]:
    """What the screen asks the user to do: pending statuses' actions and remedy rows."""
    items: list[str] = []
    for alert in alerts:
        if alert.todo:
            if lang == "zh":
                items.append(f"· {alert.todo}（图中写着“{alert.text}”）\n")
            else:
                items.append(f"- {_quote(alert.todo, lang)}: the screen says “{alert.text}”\n")
        elif "remedy" in alert.kinds:
            items.extend(_bullets([alert.text], lang))
    return items


def _unremedied(alerts: Sequence[AlertRow], lang: str) -> list[str]:
    """For problems the screen gives no remedy for: say so, and what to quote when asking for help."""
    if any("remedy" in alert.kinds for alert in alerts):
        return []
    problems = [a for a in alerts if "problem" in a.kinds and not a.todo]
    if not problems:
        return []
    named = ("、" if lang == "zh" else ", ").join(f"“{a.text}”" for a in problems)
    codes = [a.code for a in problems if a.code]
    # Retrying is worth saying only after a failure; an overdue bill is not fixed by a retry.
    failed = any(_FAILURE.search(a.text) for a in problems) or bool(codes)
    if lang == "zh":
        ask = f"联系客服时请提供错误码 {'、'.join(codes)}" if codes else "可联系客服并附上截图"
        retry = "可核对相关信息后重试，" if failed else ""
        return [f"图中没有写明如何处理{named}；{retry}{ask}。\n"]
    ask = f"contact support quoting {', '.join(codes)}" if codes else "contact support with this screenshot"
    retry = "check the details it names and retry, or " if failed else ""
    return [f"The screen does not say how to fix {named}; {retry}{ask}.\n"]


def _context(rows: Sequence[Sequence[OcrLine]], question: str, used: set[int]) -> list[KeyValue]:
    """The identifying fields on the screen not already quoted as alerts."""
    wanted = list(_CONTEXT_FIELDS)
    wanted += [name for name, words in _NUMBER_FIELDS.items() if any(mentions(question, w) for w in words)]
    pairs = []
    for name in wanted:
        pair = find_field(rows, name)
        if pair is not None and not any(id(line) in used for line in pair.lines):
            pairs.append(pair)
            used.update(id(line) for line in pair.lines)
    return pairs


def _context_sentence(pairs: Sequence[KeyValue], lang: str) -> list[str]:
    if not pairs:
        return []
    if lang == "zh":
        return ["相关信息：" + "；".join(f"{p.key} {p.value}" for p in pairs) + "。\n"]
    named = [f"{_english_key(p)} {_quote(p.value, lang)}" for p in pairs]
    return ["Also on the screen: " + "; ".join(named) + ".\n"]


def _english_key(pair: KeyValue) -> str:
    for spec in FIELDS.values():
        if any(mentions(pair.key, key) for key in spec.keys):
            return spec.name_en
    return pair.key


def _nothing_wrong(readings: Sequence[ImageReading], question: str, lang: str) -> Answer:
    rows = [row for reading in readings for row in reading.rows]
    context = _context(rows, question, set())
    if lang == "zh":
        pieces = ["图中没有显示出错或待处理的提示。\n"]
    else:
        pieces = ["I found no error, failure or pending notice in the image.\n"]
    pieces += _context_sentence(context, lang)
    if rows:
        pieces.append("图中读到的文字：\n" if lang == "zh" else "The text I read:\n")
        pieces += [row_text(row) + "\n" for row in rows[:_MAX_ROWS_LISTED]]
    else:
        pieces.append("图中没有识别到文字。" if lang == "zh" else "I found no text in the image.")
    return Answer(pieces, [line for row in rows for line in row])


def answer_diagnosis(question: str, intent: Intent, readings: Sequence[ImageReading], lang: str) -> Answer:
    """What the screen says is wrong or pending, what it says to do, and the identifying fields."""
    rows = [row for reading in readings for row in reading.rows]
    alerts = find_alerts(rows)
    if not alerts:
        return _nothing_wrong(readings, question, lang)
    shown = [a.text for a in alerts if a.kinds & {"problem", "pending"}]
    header = ("根据图中的文字，问题在于：\n" if lang == "zh"
              else "According to the text in the image, the problem is:\n")
    pieces = [header, *_bullets(shown, lang)] if shown else []
    todos = _todos(alerts, lang)
    if todos:
        pieces += ["图中提示要做的：\n" if lang == "zh" else "What the screen asks you to do:\n", *todos]
    pieces += _unremedied(alerts, lang)
    used = {id(line) for alert in alerts for line in alert.lines}
    context = _context(rows, question, used)
    pieces += _context_sentence(context, lang)
    lines = [line for alert in alerts for line in alert.lines] + [ln for p in context for ln in p.lines]
    return Answer(pieces, lines)
