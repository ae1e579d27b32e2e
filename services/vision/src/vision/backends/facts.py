"""Basic facts about an image that need no model: size, orientation, dominant colours."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

# Named colours to describe the palette with (RGB, Chinese, English).
_NAMED_COLOURS: tuple[tuple[tuple[int, int, int], str, str], ...] = (
    ((255, 255, 255), "白色", "white"),
    ((0, 0, 0), "黑色", "black"),
    ((128, 128, 128), "灰色", "grey"),
    ((200, 200, 200), "浅灰色", "light grey"),
    ((220, 40, 40), "红色", "red"),
    ((240, 140, 30), "橙色", "orange"),
    ((240, 220, 60), "黄色", "yellow"),
    ((50, 160, 60), "绿色", "green"),
    ((60, 180, 230), "天蓝色", "sky blue"),
    ((40, 70, 200), "蓝色", "blue"),
    ((140, 60, 180), "紫色", "purple"),
    ((240, 150, 190), "粉色", "pink"),
    ((140, 90, 50), "棕色", "brown"),
    ((250, 245, 225), "米色", "beige"),
)
_THUMBNAIL = 64
_PALETTE_SIZE = 6
_MIN_SHARE = 0.08  # colours covering less of the picture than this are not "dominant"


@dataclass(frozen=True, slots=True)
class ColourShare:
    """A named colour and the share of the picture it covers (0..1)."""

    name_zh: str
    name_en: str
    share: float


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """Size, orientation and dominant colours of one image."""

    width: int
    height: int
    colours: tuple[ColourShare, ...]

    @property
    def orientation(self) -> str:
        """``portrait``, ``landscape`` or ``square`` (within 5 %)."""
        if abs(self.width - self.height) <= 0.05 * max(self.width, self.height):
            return "square"
        return "portrait" if self.height > self.width else "landscape"


def _nearest_name(rgb: tuple[int, int, int]) -> tuple[str, str]:
    def distance(entry: tuple[tuple[int, int, int], str, str]) -> int:
        return sum((a - b) ** 2 for a, b in zip(entry[0], rgb, strict=True))

    _, zh, en = min(_NAMED_COLOURS, key=distance)
    return zh, en


def dominant_colours(image: Image.Image) -> tuple[ColourShare, ...]:
    """The named colours covering at least 8 % of ``image``, largest share first."""
    small = image.convert("RGB").resize((_THUMBNAIL, _THUMBNAIL))
    quantised = small.quantize(colors=_PALETTE_SIZE, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    total = _THUMBNAIL * _THUMBNAIL
    shares: dict[tuple[str, str], float] = {}
    for count, index in quantised.getcolors() or []:
        base = 3 * int(index)  # type: ignore[arg-type]  # a "P" image's colours are palette indices
        rgb = (palette[base], palette[base + 1], palette[base + 2])
        name = _nearest_name(rgb)
        shares[name] = shares.get(name, 0.0) + count / total
    ranked = sorted(shares.items(), key=lambda item: item[1], reverse=True)
    return tuple(ColourShare(zh, en, share) for (zh, en), share in ranked if share >= _MIN_SHARE)


def describe_image(image: Image.Image) -> ImageFacts:
    """The facts of ``image``."""
    return ImageFacts(image.width, image.height, dominant_colours(image))
