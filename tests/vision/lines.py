"""Hand-made OCR line lists (what RapidOCR returns after normalisation) for unit tests."""

from __future__ import annotations

from vision.backends.ocr import OcrLine


def line(text: str, x0: float, y0: float, x1: float | None = None, y1: float | None = None,
         score: float = 0.95) -> OcrLine:
    """A line box; the width defaults to 28 px per character, the height to 30 px."""
    return OcrLine(text, score, (x0, y0, x1 if x1 is not None else x0 + 28 * len(text),
                                 y1 if y1 is not None else y0 + 30))


# An order page as OCR reads it (spaces dropped, colons normalised), deliberately shuffled.
ORDER_LINES = [
    line("¥1,299.00", 555, 600, 705, 640, score=0.90),
    line("订单详情", 300, 30),
    line("实付金额", 40, 603, score=0.99),
    line("订单号:2024052011223344", 40, 236, score=1.0),
    line("订单状态:待发货", 40, 131, score=0.98),
    line("下单时间:2024-05-2011:22:33", 40, 305),
    line("收件人", 40, 700),
    line("张三", 40, 745),
]
