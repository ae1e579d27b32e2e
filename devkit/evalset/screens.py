"""The evaluation set's screenshots, drawn with PIL (nothing binary is committed).

Each screen is a title bar over rows of text, as shopping, payment and login apps draw
them; the chart screens draw bars under a title. Chinese needs the Noto CJK font from the
test dependencies (``devkit.screens.font``).
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from devkit.screens import font

_PAPER = (255, 255, 255)
_INK = (33, 33, 33)
_ALERT = (200, 30, 30)
_BAR = (60, 120, 200)


def text_screen(title: str, rows: Sequence[str], *, accent: tuple[int, int, int] = (230, 67, 45),
                alert_rows: Sequence[int] = ()) -> Image.Image:
    """A 900-px-wide app screen: a coloured title bar, then one text row per entry."""
    height = 150 + 80 * len(rows)
    image = Image.new("RGB", (900, height), _PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 900, 100), fill=accent)
    draw.text((40, 28), title, font=font(40), fill=_PAPER)
    for index, row in enumerate(rows):
        top = 130 + 80 * index
        draw.text((40, top), row, font=font(32), fill=_ALERT if index in alert_rows else _INK)
    return image


def chart_screen(title: str, labels: Sequence[str], values: Sequence[int]) -> Image.Image:
    """A bar chart: its title on top, one labelled bar per value."""
    image = Image.new("RGB", (900, 600), _PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((450, 50), title, font=font(36), fill=_INK, anchor="mm")
    top = max(values)
    width = 700 // len(values)
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = 120 + index * width
        bar_top = 500 - int(360 * value / top)
        draw.rectangle((x0, bar_top, x0 + width // 2, 500), fill=_BAR)
        draw.text((x0, 520), label, font=font(26), fill=_INK)
    draw.line((100, 500, 840, 500), fill=_INK, width=2)
    return image
