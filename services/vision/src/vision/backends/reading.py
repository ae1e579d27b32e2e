"""What ocr-lite read from an image, and the answer it builds from that."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from vision.backends.facts import ImageFacts
from vision.backends.ocr import OcrLine


@dataclass(frozen=True, slots=True)
class ImageReading:
    """What ocr-lite learnt from one image: its facts and its text rows in reading order."""

    facts: ImageFacts
    rows: list[list[OcrLine]]

    @property
    def lines(self) -> list[OcrLine]:
        return [line for row in self.rows for line in row]


@dataclass(slots=True)
class Answer:
    """The answer's pieces, in order, and the OCR lines it rests on."""

    pieces: list[str]
    lines: list[OcrLine] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def confidence(self) -> float | None:
        """Mean recognition score of the lines used (None when the answer used no text)."""
        return statistics.fmean(line.score for line in self.lines) if self.lines else None
