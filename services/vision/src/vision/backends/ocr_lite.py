"""``ocr-lite``: the embedded CPU vision backend that reads the text in images and answers from it.

It needs no downloads (RapidOCR's PP-OCRv4 ONNX models ship inside its wheel) and no GPU.
Per request it takes the last user message's question and images, reads every image
(:mod:`~vision.backends.ocr`), and answers by intent (:mod:`~vision.backends.answering`)
or as JSON (:mod:`~vision.backends.structured`). It reports itself as ``ocr-lite`` (or
``served_model_name``), never as the vision-language model it stands in for.

Usage is counted with :func:`~vision.backends.tokens.count_tokens` (one CJK character or
one ASCII word/number or one other symbol = one token): ``prompt_tokens`` is the text of
every message plus the text read from the images; ``completion_tokens`` is the answer.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

from flashsight_common.schemas import ChatMessage
from modelserver.backend import BatchSink, GenerationRequest
from modelserver.config import ModelServerSettings
from modelserver.errors import ModelServerError
from modelserver.images import decode_data_url_image
from PIL import Image, ImageDraw, ImageFont

from vision.backends.answering import Answer, ImageReading, answer_question
from vision.backends.facts import describe_image
from vision.backends.ocr import OcrEngine, group_rows
from vision.backends.structured import STRUCTURED_WRITERS, check_response_format
from vision.backends.tokens import count_tokens, limit_pieces

logger = logging.getLogger(__name__)

MODEL_ID = "ocr-lite"
_JSON_PIECE = re.compile(r"(?<=, )")


def last_user_turn(messages: Sequence[ChatMessage]) -> tuple[str, list[str]]:
    """The last user message's text, and its images, else those of the latest user message with any.

    A follow-up question ("and the amount?") usually comes without re-sending the screenshot,
    so the most recent image the user sent is the one the question is about.
    """
    users = [message for message in messages if message.role == "user"]
    if not users:
        return "", []
    question = users[-1].text()
    images: list[str] = next((m.image_urls() for m in reversed(users) if m.image_urls()), [])
    return question, images


def _warmup_image() -> Image.Image:
    """A small generated picture with printed text (Pillow's bundled font: no font files needed)."""
    image = Image.new("RGB", (360, 80), "white")
    font = ImageFont.load_default(size=32)
    ImageDraw.Draw(image).text((16, 20), "FlashSight 2024", font=font, fill="black")
    return image


class OcrLiteBackend:
    """Reads the text in images with RapidOCR and answers questions from it."""

    def __init__(self, settings: ModelServerSettings) -> None:
        self.model_id = settings.served_model_name or MODEL_ID
        self._engine: OcrEngine | None = None

    def load(self) -> None:
        started = time.perf_counter()
        self._engine = OcrEngine.create()
        logger.info("ocr-lite: RapidOCR (PP-OCRv4 det/rec, bundled ONNX) ready in %.2fs",
                    time.perf_counter() - started)

    def warmup(self) -> None:
        lines = self._ocr().read(_warmup_image())
        logger.info("ocr-lite warm-up read %r", " ".join(line.text for line in lines))

    def check_request(self, request: GenerationRequest) -> None:
        """Refuse a ``response_format`` ocr-lite can never honour before it is queued."""
        check_response_format(request.response_format)

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        # One request at a time: RapidOCR runs one image at a time, and a bad image or an
        # unfillable schema fails only its own request.
        for index, request in enumerate(batch):
            if sink.is_cancelled(index):
                sink.finish(index, finish_reason="stop", prompt_tokens=0, completion_tokens=0)
                continue
            try:
                self._serve(index, request, sink)
            except ModelServerError as exc:
                sink.fail(index, exc)

    def _ocr(self) -> OcrEngine:
        if self._engine is None:
            raise RuntimeError("ocr-lite used before load()")
        return self._engine

    def read_image(self, url: str) -> ImageReading:
        """Decode one ``data:`` URL image and read it."""
        image = decode_data_url_image(url)
        return ImageReading(describe_image(image), group_rows(self._ocr().read(image)))

    def answer(self, request: GenerationRequest) -> tuple[Answer, list[ImageReading]]:
        """The full answer to ``request`` (before the token limit), and what was read."""
        question, urls = last_user_turn(request.messages)
        readings = [self.read_image(url) for url in urls]
        kind = (request.response_format or {}).get("type", "text")
        writer = STRUCTURED_WRITERS.get(kind)
        if writer is None:
            return answer_question(question, readings), readings
        text, lines = writer(request.response_format or {}, readings)
        return Answer(_JSON_PIECE.split(text), lines), readings

    def _serve(self, index: int, request: GenerationRequest, sink: BatchSink) -> None:
        answer, readings = self.answer(request)
        pieces, cut = limit_pieces(answer.pieces, request.sampling.max_tokens)
        emitted = 0
        for piece in pieces:
            if sink.is_cancelled(index):
                break
            sink.emit(index, piece)
            emitted += count_tokens(piece)
        read_text = " ".join(line.text for reading in readings for line in reading.lines)
        prompt_tokens = sum(count_tokens(message.text()) for message in request.messages)
        sink.finish(
            index,
            finish_reason="length" if cut else "stop",
            prompt_tokens=prompt_tokens + count_tokens(read_text),
            completion_tokens=emitted,
            confidence=answer.confidence,
        )
