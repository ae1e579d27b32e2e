"""Key–value fields on a screenshot: which field a question asks for, and where its value is.

A field is read three ways, as business screenshots lay them out:

* ``订单号:2024052011223344``: key and value in one OCR line, split at the first colon
  (text is NFKC-normalised, so the full-width ``：`` is ``:`` here);
* ``实付金额`` ... ``¥1,299.00``: a label box with its value box to its right on the same row;
* a label with its value on the row below (cards, forms).

Keys are compared in a "compact" form (lower case, no spaces or ``.#_-/()``) because
RapidOCR drops spaces: "Invoice No." reads "InvoiceNo.". Values are returned as read.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from vision.backends.ocr import OcrLine
from vision.backends.text import compact, mentions

_HAS_WORD = re.compile(r"[A-Za-z\u3400-\u9fff]")
_MAX_KEY_CHARS = 20
_MAX_LABEL_CHARS = 12
# How far below a bare label its value may sit, in median line heights.
_BELOW_REACH = 2.5


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A business field: its names for answers and the keys it appears under."""

    name_zh: str
    name_en: str
    keys: tuple[str, ...]
    """How the field's key is written on screens (Chinese and English)."""
    question_words: tuple[str, ...] = ()
    """Extra words that ask for the field without naming a key ("多少钱", "how much")."""


# The field table: a question naming any key or question word asks for that field.
FIELDS: dict[str, FieldSpec] = {
    "order_number": FieldSpec("订单号", "order number", (
        "订单号", "订单编号", "订单号码", "订单id", "order no", "order number", "order id", "order #",
    )),
    "invoice_number": FieldSpec("发票号码", "invoice number", (
        "发票号码", "发票号", "invoice no", "invoice number", "invoice #", "invoice id",
    )),
    "amount": FieldSpec("金额", "amount", (
        "实付金额", "实付款", "实付", "应付金额", "应付", "价税合计", "合计", "总计", "总金额", "总额",
        "金额", "总价", "价格", "grand total", "amount due", "total", "amount", "price", "paid",
    ), ("多少钱", "花了多少", "付了多少", "how much", "cost")),
    "date": FieldSpec("日期", "date", (
        "下单时间", "下单日期", "开票日期", "付款时间", "日期", "时间", "date", "time",
    ), ("什么时候", "哪天", "when")),
    "phone": FieldSpec("电话", "phone number", (
        "联系电话", "电话号码", "电话", "手机号", "手机", "phone", "tel", "mobile", "telephone",
    )),
    "status": FieldSpec("状态", "status", ("订单状态", "物流状态", "状态", "status", "state")),
    "address": FieldSpec("地址", "address", (
        "收货地址", "地址", "shipping address", "address",
    ), ("寄到哪", "送到哪", "寄往")),
    "product": FieldSpec("商品", "item", (
        "商品名称", "商品", "项目", "product", "item", "goods",
    ), ("买了什么",)),
    "seller": FieldSpec("销售方", "seller", (
        "销售方", "卖家", "商家", "店铺", "seller", "vendor", "merchant",
    )),
    "buyer": FieldSpec("收货人", "name", (
        "收货人", "收件人", "购买方", "姓名", "buyer", "recipient", "consignee", "name",
    )),
}


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key and its value as read, with the OCR lines they came from."""

    key: str
    value: str
    lines: tuple[OcrLine, ...]


def field_asked(question: str) -> str | None:
    """The :data:`FIELDS` key the question asks for (the longest matching word wins), if any."""
    best: tuple[int, str] | None = None
    for name, spec in FIELDS.items():
        for word in (*spec.keys, *spec.question_words):
            if mentions(question, word) and (best is None or len(word) > best[0]):
                best = (len(word), name)
    return best[1] if best else None


def split_key_value(text: str) -> tuple[str, str] | None:
    """``("key", "value")`` when ``text`` reads ``key:value`` with a word-like key; the value may be empty."""
    key, sep, value = text.partition(":")
    key = key.strip()
    if not sep or not key or len(key) > _MAX_KEY_CHARS or not _HAS_WORD.search(key):
        return None
    return key, value.strip()


def _key_score(key: str, spec: FieldSpec) -> int:
    """How well a key read on screen matches the field (0 = not at all); longer aliases score more."""
    key_c = compact(key)
    best = 0
    for alias in spec.keys:
        alias_c = compact(alias)
        if not alias_c or alias_c not in key_c:
            continue
        exactness = 3 if key_c == alias_c else 2 if key_c.startswith(alias_c) else 1
        best = max(best, exactness * 100 + len(alias_c))
    return best


def _is_label(line: OcrLine) -> bool:
    """A short word-like box with no colon and no digits: a label whose value sits elsewhere."""
    text = line.text
    return (":" not in text and len(text) <= _MAX_LABEL_CHARS and _HAS_WORD.search(text) is not None
            and not any(ch.isdigit() for ch in text))


def _is_known_key(text: str) -> bool:
    return any(_key_score(text, spec) for spec in FIELDS.values())


class Layout:
    """Rows of OCR lines with the neighbour look-ups key–value reading needs."""

    def __init__(self, rows: Sequence[Sequence[OcrLine]]) -> None:
        self.rows = [list(row) for row in rows]
        heights = [line.height for row in self.rows for line in row]
        self._median_height = statistics.median(heights) if heights else 1.0

    def right_of(self, row_index: int, line: OcrLine) -> OcrLine | None:
        """The next box to the right of ``line`` in its row."""
        row = self.rows[row_index]
        position = row.index(line)
        return row[position + 1] if position + 1 < len(row) else None

    def below(self, row_index: int, line: OcrLine) -> OcrLine | None:
        """The nearest box under ``line`` (overlapping it horizontally, within reach)."""
        for row in self.rows[row_index + 1:]:
            gap = min(item.y0 for item in row) - line.y1
            if gap > _BELOW_REACH * self._median_height:
                return None
            for item in row:
                if item.x0 < line.x1 and item.x1 > line.x0:
                    return item
        return None

    def value_near(self, row_index: int, line: OcrLine) -> OcrLine | None:
        """The value box of a bare label: to its right, else below; never another key."""
        for candidate in (self.right_of(row_index, line), self.below(row_index, line)):
            if (candidate is not None and split_key_value(candidate.text) is None
                    and not _is_known_key(candidate.text)):
                return candidate
        return None

    def pair_at(self, row_index: int, line: OcrLine, *, label_keys: bool) -> KeyValue | None:
        """The key–value pair that ``line`` starts, if it is a key (``label_keys``: accept bare labels)."""
        split = split_key_value(line.text)
        if split is not None:
            key, value = split
            if value:
                return KeyValue(key, value, (line,))
            near = self.value_near(row_index, line)
            return KeyValue(key, near.text, (line, near)) if near else None
        if label_keys and _is_label(line):
            near = self.value_near(row_index, line)
            # A bare label pairs with a value only when it is a known key or the value looks
            # like data (has a digit): a title beside a subtitle is not a field.
            if near is not None and (_is_known_key(line.text) or any(ch.isdigit() for ch in near.text)):
                return KeyValue(line.text, near.text, (line, near))
        return None


def extract_pairs(rows: Sequence[Sequence[OcrLine]]) -> list[KeyValue]:
    """Every key–value pair on the screen, in reading order (keys and values as read)."""
    layout = Layout(rows)
    pairs: list[KeyValue] = []
    used: set[int] = set()
    for index, row in enumerate(layout.rows):
        for line in row:
            if id(line) in used:
                continue
            pair = layout.pair_at(index, line, label_keys=True)
            if pair is not None:
                pairs.append(pair)
                used.update(id(item) for item in pair.lines)
    return pairs


def _pair_after_alias(line: OcrLine, spec: FieldSpec) -> KeyValue | None:
    """``订单号2024...`` when OCR lost the colon: the text after a known key that starts the line."""
    text_c = line.text
    for alias in sorted(spec.keys, key=len, reverse=True):
        if text_c.lower().startswith(alias.lower()) and len(text_c) > len(alias):
            value = text_c[len(alias):].strip()
            if any(ch.isdigit() for ch in value):
                return KeyValue(text_c[: len(alias)], value, (line,))
    return None


def find_field(rows: Sequence[Sequence[OcrLine]], field: str) -> KeyValue | None:
    """The value of ``field`` (a :data:`FIELDS` key) on the screen: the best-matching key's value."""
    spec = FIELDS[field]
    layout = Layout(rows)
    best: tuple[int, KeyValue] | None = None
    for index, row in enumerate(layout.rows):
        for line in row:
            pair = layout.pair_at(index, line, label_keys=True) or _pair_after_alias(line, spec)
            if pair is None:
                continue
            score = _key_score(pair.key, spec)
            if score and (best is None or score > best[0]):
                best = (score, pair)
    return best[1] if best else None


def find_key_named(rows: Sequence[Sequence[OcrLine]], question: str) -> KeyValue | None:
    """A pair whose key, as read, appears literally in the question (for keys no alias covers)."""
    question_c = compact(question)
    matches = [pair for pair in extract_pairs(rows)
               if len(compact(pair.key)) >= 2 and compact(pair.key) in question_c]
    return max(matches, key=lambda pair: len(compact(pair.key)), default=None)
