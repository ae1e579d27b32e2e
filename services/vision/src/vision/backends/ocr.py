"""Running RapidOCR and putting what it read in reading order.

RapidOCR (PP-OCRv4 det + rec ONNX models shipped inside the ``rapidocr-onnxruntime``
wheel) returns one box per detected text line, in no guaranteed order. Here the boxes
become :class:`OcrLine` objects with NFKC-normalised text (so full-width ``：`` and ``￥``
read as ``:`` and ``¥``), grouped into visual rows (top to bottom, left to right within a
row) and rows into blocks separated by large vertical gaps.

RapidOCR drops most spaces between words ("Invoice No." reads "InvoiceNo."), so nothing
downstream may split fields on spaces.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

# Two boxes sit on the same visual row when they overlap vertically by this share of the
# smaller box's height (text in one row may differ in size: a label and a bigger price).
_ROW_OVERLAP = 0.5
# A vertical gap larger than this many median line heights starts a new block.
_BLOCK_GAP = 1.6
# Text detection sees the image at native size up to a longest side of 1024 px (what the
# gateway sends) and scaled down beyond. RapidOCR's default instead scales the SHORTEST
# side up to 736 px, which blows a 360x80 banner up to 3312x736 and costs ~600 MB of RSS
# for no better reading of screenshots (measured: peak RSS 773 MB → 420 MB, same text).
RAPIDOCR_OPTIONS: dict[str, Any] = {"det_limit_type": "max", "det_limit_side_len": 1024}


def normalise_text(text: str) -> str:
    """NFKC (full-width → ASCII punctuation and digits) and trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One recognised text line: its text, recognition score and bounding box (x0, y0, x1, y1)."""

    text: str
    score: float
    box: tuple[float, float, float, float]

    @property
    def x0(self) -> float:
        return self.box[0]

    @property
    def y0(self) -> float:
        return self.box[1]

    @property
    def x1(self) -> float:
        return self.box[2]

    @property
    def y1(self) -> float:
        return self.box[3]

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 1.0)

    @property
    def center_y(self) -> float:
        return (self.y0 + self.y1) / 2


def line_of(points: Sequence[Sequence[float]], text: str, score: float) -> OcrLine:
    """An :class:`OcrLine` from RapidOCR's four corner points (the box is their bounds)."""
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return OcrLine(normalise_text(text), float(score), (min(xs), min(ys), max(xs), max(ys)))


def _same_row(row: list[OcrLine], line: OcrLine) -> bool:
    top = min(item.y0 for item in row)
    bottom = max(item.y1 for item in row)
    overlap = min(bottom, line.y1) - max(top, line.y0)
    smaller = min(bottom - top, line.height)
    return overlap >= _ROW_OVERLAP * smaller


def group_rows(lines: Sequence[OcrLine]) -> list[list[OcrLine]]:
    """Lines grouped into visual rows: rows top to bottom, each row's lines left to right."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda item: (item.center_y, item.x0)):
        if rows and _same_row(rows[-1], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda item: item.x0) for row in rows]


def reading_order(lines: Sequence[OcrLine]) -> list[OcrLine]:
    """Lines in reading order (row by row, left to right)."""
    return [line for row in group_rows(lines) for line in row]


def group_blocks(rows: Sequence[list[OcrLine]]) -> list[list[list[OcrLine]]]:
    """Rows grouped into blocks (regions) split where the vertical gap is unusually large."""
    if not rows:
        return []
    median_height = statistics.median(line.height for row in rows for line in row)
    blocks: list[list[list[OcrLine]]] = [[rows[0]]]
    for previous, row in itertools.pairwise(rows):
        gap = min(line.y0 for line in row) - max(line.y1 for line in previous)
        if gap > _BLOCK_GAP * median_height:
            blocks.append([row])
        else:
            blocks[-1].append(row)
    return blocks


def row_text(row: Sequence[OcrLine]) -> str:
    """A row's lines joined left to right with a space between boxes."""
    return " ".join(line.text for line in row)


class OcrEngine:
    """One RapidOCR instance; calls are serialised because its sessions are not shared safely."""

    def __init__(self, ocr: Any) -> None:
        self._ocr = ocr
        self._lock = threading.Lock()

    @classmethod
    def create(cls) -> OcrEngine:
        """Build RapidOCR from the models inside its wheel (no downloads)."""
        from rapidocr_onnxruntime import RapidOCR  # heavy import (onnxruntime, cv2): only when used

        return cls(RapidOCR(**RAPIDOCR_OPTIONS))

    def read(self, image: Image.Image) -> list[OcrLine]:
        """The text lines in ``image`` (RGB), in reading order; empty when there is no text."""
        with self._lock:
            result, _elapsed = self._ocr(image)
        lines = [line_of(points, text, score) for points, text, score in (result or [])]
        return reading_order([line for line in lines if line.text])
