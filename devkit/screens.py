"""Generated test images: the screenshots every service's tests send.

Nothing here is committed as a binary: each function draws its image with PIL and
returns PNG bytes, so a test can vary the fields it asserts on. Chinese text needs a
CJK font; it comes from the ``cvttf-notosanscjk-regular`` test dependency (listed in
``requirements/test.txt``). DejaVu is only a fallback for images with ASCII text.
"""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

ORDER_SIZE = (750, 1000)
INVOICE_SIZE = (900, 600)

_INK = (33, 33, 33)
_MUTED = (120, 120, 120)
_ACCENT = (230, 67, 45)
_PAPER = (255, 255, 255)
_BAND = (245, 245, 245)


@cache
def _cjk_font_path() -> str:
    """The bundled Noto Sans CJK font; a clear error when the test dependency is missing."""
    try:
        import cvttf_NotoSansCJK_Regular  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError(
            "generated Chinese screenshots need the CJK font package: "
            "pip install -r requirements/test.txt (cvttf-notosanscjk-regular)"
        ) from exc
    return str(cvttf_NotoSansCJK_Regular.get_TTF_path())


@cache
def font(size: int, *, cjk: bool = True) -> ImageFont.FreeTypeFont:
    """A font of ``size`` px: Noto Sans CJK, or DejaVu when only ASCII is drawn."""
    if cjk:
        return ImageFont.truetype(_cjk_font_path(), size)
    return ImageFont.truetype(str(_DEJAVU), size)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def as_data_url(png_bytes: bytes, mime: str = "image/png") -> str:
    """``png_bytes`` as a ``data:`` URL, the form the model services accept."""
    return f"data:{mime};base64,{base64.b64encode(png_bytes).decode('ascii')}"


def order_screenshot(
    order_no: str = "2024052011223344",
    status: str = "待发货",
    amount: str = "¥1,299.00",
    *,
    placed_at: str = "2024-05-20 11:22:33",
    address: str = "上海市浦东新区世纪大道100号",
    product: str = "无线降噪耳机 Pro × 1",
    phone: str = "138-0013-8000",
) -> bytes:
    """A 750x1000 Chinese e-commerce order-detail page as PNG bytes."""
    image = Image.new("RGB", ORDER_SIZE, _PAPER)
    draw = ImageDraw.Draw(image)
    # Title bar, as a shopping app draws it.
    draw.rectangle((0, 0, 750, 96), fill=_ACCENT)
    draw.text((375, 48), "订单详情", font=font(36), fill=_PAPER, anchor="mm")
    # Status banner.
    draw.rectangle((0, 96, 750, 200), fill=_BAND)
    draw.text((40, 148), f"订单状态：{status}", font=font(32), fill=_ACCENT, anchor="lm")

    rows = [
        ("订单号", order_no),
        ("下单时间", placed_at),
        ("收货地址", address),
        ("联系电话", phone),
        ("商品", product),
    ]
    y = 250
    for label, value in rows:
        draw.text((40, y), f"{label}：{value}", font=font(28), fill=_INK, anchor="lm")
        y += 70
        draw.line((40, y - 35, 710, y - 35), fill=(230, 230, 230), width=1)

    # Amount: label left, value right-aligned (value on the same visual row, separate box).
    y += 30
    draw.text((40, y), "实付金额", font=font(30), fill=_INK, anchor="lm")
    draw.text((710, y), amount, font=font(34), fill=_ACCENT, anchor="rm")
    y += 90
    draw.text((40, y), "Payment: Alipay (paid in full)", font=font(24), fill=_MUTED, anchor="lm")

    # Bottom buttons.
    draw.rounded_rectangle((380, 900, 540, 960), radius=30, outline=_MUTED, width=2)
    draw.text((460, 930), "联系客服", font=font(26), fill=_INK, anchor="mm")
    draw.rounded_rectangle((560, 900, 720, 960), radius=30, fill=_ACCENT)
    draw.text((640, 930), "确认收货", font=font(26), fill=_PAPER, anchor="mm")
    return _png(image)


def invoice_screenshot(
    invoice_no: str = "No.04452817",
    amount: str = "¥8,650.00",
    date: str = "2024年05月20日",
    *,
    seller: str = "北京星辰科技有限公司",
) -> bytes:
    """A 900x600 bilingual VAT invoice (发票号码 / Invoice No., 金额 / Total) as PNG bytes."""
    image = Image.new("RGB", INVOICE_SIZE, (253, 250, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 880, 580), outline=(150, 60, 40), width=3)
    draw.text((450, 70), "增值税电子普通发票", font=font(38), fill=(150, 60, 40), anchor="mm")
    draw.text((450, 115), "ELECTRONIC INVOICE", font=font(22), fill=_MUTED, anchor="mm")
    rows = [
        (f"发票号码 Invoice No.：{invoice_no}", 190),
        (f"开票日期 Date：{date}", 250),
        (f"销售方：{seller}", 310),
        ("项目：信息技术服务费", 370),
    ]
    for text, y in rows:
        draw.text((60, y), text, font=font(28), fill=_INK, anchor="lm")
    draw.line((60, 420, 840, 420), fill=(150, 60, 40), width=2)
    draw.text((60, 480), "价税合计 Total", font=font(30), fill=_INK, anchor="lm")
    draw.text((840, 480), amount, font=font(34), fill=(150, 60, 40), anchor="rm")
    return _png(image)


def photo_like_image(size: tuple[int, int] = (640, 480), *, seed: int = 7) -> bytes:
    """A landscape-like picture with no text: sky gradient, sun, hills, soft noise."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.6)
    for y in range(horizon):
        shade = int(120 + 100 * y / horizon)
        draw.line((0, y, width, y), fill=(shade // 2, shade - 20, 235))
    draw.rectangle((0, horizon, width, height), fill=(60, 130, 60))
    draw.ellipse((width * 0.7, height * 0.1, width * 0.85, height * 0.1 + width * 0.15),
                 fill=(250, 220, 90))
    rng = random.Random(seed)
    for _ in range(6):
        cx = rng.randint(0, width)
        r = rng.randint(width // 8, width // 3)
        draw.ellipse((cx - r, horizon - r // 3, cx + r, horizon + r), fill=(40, 110 + rng.randint(0, 40), 50))
    return _png(image)


def image_bytes_of(png_bytes: bytes) -> Image.Image:
    """Decode PNG bytes back to a PIL RGB image (for tests that inspect pixels)."""
    return Image.open(io.BytesIO(png_bytes)).convert("RGB")


def png_16bit_rgba(width: int, height: int) -> bytes:
    """A valid all-zero 16-bit RGBA PNG (8 bytes a pixel decoded), compressed row by row.

    Small on the wire, large when decoded: the shape of the memory-amplification attack
    (docs/security.md), made without Pillow so any size can be written quickly.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + width * 8)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
