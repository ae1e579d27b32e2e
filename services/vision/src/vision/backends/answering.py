"""Answering a question from what ocr-lite read: one answerer per intent, in the question's language.

An answer is a list of pieces (sentences, lines) so that a stream shows it arriving in
several chunks, plus the OCR lines it was built from (their mean score is the answer's
confidence). ocr-lite never pretends to see what it cannot: questions about objects,
people or scenes get a plain statement of what it does, and what it read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from vision.backends.diagnosis import answer_diagnosis
from vision.backends.facts import ImageFacts
from vision.backends.fields import FIELDS, KeyValue, find_field, find_key_named
from vision.backends.intents import Intent, classify_intent
from vision.backends.ocr import OcrLine, group_blocks, row_text
from vision.backends.reading import Answer, ImageReading
from vision.backends.text import answer_language, compact, has_cjk

_MAX_ROWS_LISTED = 30
_MAX_RELEVANT_ROWS = 3
_ORIENTATION = {
    "zh": {"portrait": "竖版", "landscape": "横版", "square": "方形"},
    "en": {"portrait": "portrait", "landscape": "landscape", "square": "square"},
}
_QUESTION_FILLER = re.compile(
    r"是什么|是多少|多少|什么|哪些|哪个|图中|图里|图片|这张|这个|请问|一下|吗|呢|的|了|是"
)
_EN_STOPWORDS = frozenset((
    "the", "a", "an", "is", "are", "was", "what", "which", "who", "whom", "this", "that", "these",
    "those", "of", "in", "on", "for", "to", "and", "or", "it", "its", "image", "picture", "photo",
    "please", "tell", "me", "does", "do", "say", "show", "there", "how",
))


def _facts_sentence(facts: ImageFacts, lang: str) -> str:
    orientation = _ORIENTATION[lang][facts.orientation]
    if lang == "zh":
        colours = "、".join(c.name_zh for c in facts.colours) or "多种颜色混合"
        return f"这是一张 {facts.width}×{facts.height} 像素的{orientation}图片，主要颜色是{colours}。"
    names = [c.name_en for c in facts.colours]
    colours = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names) or "mixed"
    return f"This is a {facts.width}×{facts.height} {orientation} image; its main colours are {colours}. "


def _rows_listed(rows: Sequence[Sequence[OcrLine]]) -> list[str]:
    shown = [row_text(row) + "\n" for row in rows[:_MAX_ROWS_LISTED]]
    if len(rows) > _MAX_ROWS_LISTED:
        shown.append(f"… (+{len(rows) - _MAX_ROWS_LISTED})\n")
    return shown


def _text_read(reading: ImageReading, lang: str) -> list[str]:
    """What was read, as a header and one piece per row (or a sentence saying there was none)."""
    if not reading.rows:
        return ["图中没有识别到文字。" if lang == "zh" else "I found no text in the image."]
    header = "图中读到的文字：\n" if lang == "zh" else "The text I read:\n"
    return [header, *_rows_listed(reading.rows)]


def _each_image(readings: Sequence[ImageReading], lang: str,
                describe: Callable[[ImageReading], list[str]]) -> list[str]:
    """``describe`` for every image, numbered when there are several."""
    if len(readings) == 1:
        return describe(readings[0])
    pieces: list[str] = []
    for number, reading in enumerate(readings, start=1):
        pieces.append(f"图片 {number}：" if lang == "zh" else f"Image {number}: ")
        pieces.extend(describe(reading))
        pieces[-1] = pieces[-1].rstrip("\n") + "\n"
    return pieces


def answer_caption(question: str, intent: Intent, readings: Sequence[ImageReading], lang: str) -> Answer:
    """Size, orientation, colours, layout, then the text in reading order."""

    def describe(reading: ImageReading) -> list[str]:
        pieces = [_facts_sentence(reading.facts, lang)]
        if not reading.rows:
            return [*pieces, "图中没有识别到文字。" if lang == "zh" else "I found no text in it."]
        regions = len(group_blocks(reading.rows))
        lines = len(reading.lines)
        if lang == "zh":
            pieces += [f"图中识别出 {lines} 行文字，分布在 {regions} 个区域。", "按阅读顺序，文字如下：\n"]
        else:
            pieces += [f"I read {lines} lines of text in {regions} regions. ", "In reading order:\n"]
        return pieces + _rows_listed(reading.rows)

    return Answer(_each_image(readings, lang, describe), [ln for r in readings for ln in r.lines])


def _label_for(pair: KeyValue, spec_zh: str, lang: str, spec_en: str) -> str:
    if lang == "en":
        return spec_en
    # Use the key as the screen wrote it ("实付金额"), keeping only its Chinese part.
    match = re.match(r"[\u3400-\u9fff]+", pair.key)
    return match.group(0) if match else spec_zh


def _field_sentences(pair: KeyValue, label: str, lang: str) -> list[str]:
    if lang == "zh":
        return [f"{label}是 {pair.value}。", f"（读自图中“{pair.key}”一栏。）"]
    return [f"The {label} is {pair.value}. ", f"(Read from the “{pair.key}” field.)"]


def answer_field(question: str, intent: Intent, readings: Sequence[ImageReading], lang: str) -> Answer:
    """The value of the field asked for, from the first image that shows it."""
    assert intent.field is not None
    spec = FIELDS[intent.field]
    for reading in readings:
        pair = find_field(reading.rows, intent.field)
        if pair is not None:
            label = _label_for(pair, spec.name_zh, lang, spec.name_en)
            return Answer(_field_sentences(pair, label, lang), list(pair.lines))
    missing = (f"图中没有找到{spec.name_zh}。" if lang == "zh"
               else f"I could not find the {spec.name_en} in the image. ")
    return Answer([missing, *_each_image(readings, lang, lambda r: _text_read(r, lang))],
                  [ln for r in readings for ln in r.lines])


def answer_unseeable(question: str, intent: Intent, readings: Sequence[ImageReading], lang: str) -> Answer:
    """Say plainly what ocr-lite cannot see, then the basic facts and the text it read."""
    if lang == "zh":
        notice = ("ocr-lite 只能读取图中的文字并给出基本的图像信息（尺寸、方向、主要颜色），"
                  "看不到物体、人物、动物或场景，所以无法回答这个问题。")
    else:
        notice = ("ocr-lite only reads the text in an image and reports basic image facts (size, "
                  "orientation, main colours); it cannot see objects, people, animals or scenes, "
                  "so it cannot answer that. ")
    body = _each_image(readings, lang, lambda r: [_facts_sentence(r.facts, lang), *_text_read(r, lang)])
    return Answer([notice, *body], [ln for r in readings for ln in r.lines])


def _question_terms(question: str) -> set[str]:
    """Words of the question worth looking for: English words and Chinese bigrams, minus filler."""
    english = {w for w in re.findall(r"[a-z0-9]{3,}", question.lower()) if w not in _EN_STOPWORDS}
    chinese_runs = re.findall(r"[\u3400-\u9fff]+", _QUESTION_FILLER.sub(" ", question))
    bigrams = {run[i:i + 2] for run in chinese_runs for i in range(max(len(run) - 1, 1))}
    return english | bigrams


def answer_generic(question: str, intent: Intent, readings: Sequence[ImageReading], lang: str) -> Answer:
    """A key named in the question, else the rows sharing most words with it, else all text read."""
    for reading in readings:
        pair = find_key_named(reading.rows, question)
        if pair is not None:
            label = pair.key if lang == "zh" or not has_cjk(pair.key) else "value"
            return Answer(_field_sentences(pair, label, lang), list(pair.lines))
    terms = _question_terms(question)
    scored = [(sum(term in compact(row_text(row)) for term in terms), position, row)
              for reading in readings for position, row in enumerate(reading.rows)]
    relevant = sorted((item for item in scored if item[0] > 0), key=lambda item: (-item[0], item[1]))
    if relevant:
        rows = [row for _, _, row in sorted(relevant[:_MAX_RELEVANT_ROWS], key=lambda item: item[1])]
        header = "与问题最相关的文字：\n" if lang == "zh" else "The text most related to the question:\n"
        return Answer([header, *_rows_listed(rows)], [ln for row in rows for ln in row])
    notice = ("图中没有与问题直接相关的文字。" if lang == "zh"
              else "I found no text in the image that answers this directly. ")
    return Answer([notice, *_each_image(readings, lang, lambda r: _text_read(r, lang))],
                  [ln for r in readings for ln in r.lines])


Answerer = Callable[[str, Intent, Sequence[ImageReading], str], Answer]

# Intent kind → answerer (see :mod:`vision.backends.intents`).
ANSWERERS: dict[str, Answerer] = {
    "caption": answer_caption,
    "field": answer_field,
    "unseeable": answer_unseeable,
    "generic": answer_generic,
    "diagnose": answer_diagnosis,
}


def answer_without_image(question: str) -> Answer:
    """ocr-lite answers from images only: ask for one."""
    if answer_language(question) == "zh":
        return Answer(["请附上一张图片：", "ocr-lite 通过读取图中的文字来回答问题。"])
    return Answer(["Please attach an image: ", "ocr-lite answers by reading the text in an image."])


def answer_question(question: str, readings: Sequence[ImageReading]) -> Answer:
    """The answer to ``question`` about the images read (in the question's language)."""
    if not readings:
        return answer_without_image(question)
    all_text = " ".join(line.text for reading in readings for line in reading.lines)
    lang = answer_language(question, fallback_text=all_text)
    intent = classify_intent(question)
    return ANSWERERS[intent.kind](question, intent, readings, lang)
