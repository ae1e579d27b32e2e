"""Draws the sample screenshots under examples/ (committed, so users need no CJK font).

    .venv/bin/python examples/make_samples.py

order.png is the image in the README's and `make run`'s curl example: an order-details
page whose order number (ORDER_NUMBER) the vision service reads back when asked
"订单号是多少?". order_blocked.png is the seed articles' scenario, in the README's
"why has my order not shipped?" exchange: an order held by an incomplete address and a
failed bank-card check (BLOCKED_FIELDS). The font comes from the
`cvttf-notosanscjk-regular` package (requirements/test.txt).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
ORDER_NUMBER = "202411250831"
ORDER_FIELDS: tuple[tuple[str, str], ...] = (
    ("订单号", ORDER_NUMBER),
    ("下单时间", "2024-11-25 08:31"),
    ("商品", "无线蓝牙耳机"),
    ("数量", "1"),
    ("实付金额", "¥299.00"),
    ("收货人", "王小明"),
    ("订单状态", "已发货"),
)
# A row with an empty label is a notice drawn across the row, in red.
BLOCKED_FIELDS: tuple[tuple[str, str], ...] = (
    ("订单号", "2024031512345"),
    ("状态", "待补充地址"),
    ("", "银行卡验证失败 ERR_1003"),
    ("金额", "¥5200.00"),
)


def _font(size: int) -> ImageFont.FreeTypeFont:
    import cvttf_NotoSansCJK_Regular  # type: ignore[import-untyped]

    return ImageFont.truetype(str(cvttf_NotoSansCJK_Regular.get_TTF_path()), size)


def draw_order(fields: tuple[tuple[str, str], ...] = ORDER_FIELDS) -> Image.Image:
    """A 750×1000 shop order page: a title bar, then one label/value row per field."""
    image = Image.new("RGB", (750, 1000), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 750, 120), fill=(230, 67, 45))
    draw.text((40, 35), "订单详情", font=_font(44), fill=(255, 255, 255))
    label_font, value_font = _font(32), _font(32)
    for row, (label, value) in enumerate(fields):
        top = 170 + row * 100
        if label:
            draw.text((40, top), f"{label}:", font=label_font, fill=(120, 120, 120))
            draw.text((260, top), value, font=value_font, fill=(33, 33, 33))
        else:
            draw.text((40, top), value, font=value_font, fill=(200, 30, 30))
        draw.line((40, top + 70, 710, top + 70), fill=(230, 230, 230), width=2)
    return image


def main() -> None:
    # 16 colours keep the PNG small (~30 kB) for a data: URL in a shell command; saved as
    # RGB, not as a palette image, because some readers (RapidOCR given a path) mishandle those.
    for name, fields in (("order.png", ORDER_FIELDS), ("order_blocked.png", BLOCKED_FIELDS)):
        draw_order(fields).quantize(colors=16).convert("RGB").save(HERE / name, optimize=True)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
