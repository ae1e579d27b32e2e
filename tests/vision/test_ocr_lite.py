"""ocr-lite end to end on generated screenshots: real RapidOCR, real images, a recording sink."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flashsight_common.schemas import ChatMessage
from modelserver.backend import Backend, GenerationRequest, SamplingParams
from modelserver.errors import InvalidImageError, UnsupportedParameterError
from vision.backends import BACKENDS
from vision.backends.ocr_lite import OcrLiteBackend, last_user_turn
from vision.config import VisionSettings

from devkit.screens import as_data_url, invoice_screenshot, order_screenshot, photo_like_image


@dataclass
class Row:
    pieces: list[str] = field(default_factory=list)
    finished: dict[str, Any] | None = None
    error: Exception | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class RecordingSink:
    """A BatchSink that keeps what the backend reports; rows listed in ``cancelled`` are cancelled."""

    def __init__(self, size: int, cancelled: frozenset[int] = frozenset()) -> None:
        self.rows = [Row() for _ in range(size)]
        self.cancelled = cancelled

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        assert self.rows[index].finished is None, "emit after finish"
        self.rows[index].pieces.append(text)

    def finish(self, index: int, **report: Any) -> None:
        assert self.rows[index].finished is None, "finished twice"
        self.rows[index].finished = report

    def fail(self, index: int, error: Exception) -> None:
        self.rows[index].error = error

    def is_cancelled(self, index: int) -> bool:
        return index in self.cancelled


@pytest.fixture(scope="module")
def backend() -> Iterator[OcrLiteBackend]:
    made = BACKENDS["ocr-lite"](VisionSettings())
    assert isinstance(made, OcrLiteBackend)
    made.load()
    made.warmup()
    yield made


def ask(question: str, *images: bytes, max_tokens: int = 512, response_format: dict[str, Any] | None = None,
        request_id: str = "r") -> GenerationRequest:
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": as_data_url(png)}}
                                     for png in images]
    content.append({"type": "text", "text": question})
    return GenerationRequest(request_id, [ChatMessage(role="user", content=content)],  # type: ignore[arg-type]
                             SamplingParams(max_tokens=max_tokens), response_format=response_format)


def run(
    backend: OcrLiteBackend, *requests: GenerationRequest, cancelled: frozenset[int] = frozenset()
) -> list[Row]:
    sink = RecordingSink(len(requests), cancelled)
    backend.generate(requests, sink)
    for row in sink.rows:
        assert (row.finished is None) != (row.error is None), "each request is finished or failed once"
    return sink.rows


def test_the_backend_satisfies_the_protocol_and_names_itself_ocr_lite(backend: OcrLiteBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.model_id == "ocr-lite"
    assert OcrLiteBackend(VisionSettings(served_model_name="my-ocr")).model_id == "my-ocr"


def test_reads_the_order_number_from_the_order_screenshot(backend: OcrLiteBackend) -> None:
    [row] = run(backend, ask("订单号是多少?", order_screenshot(order_no="2024061599887766")))
    assert row.text.startswith("订单号是 2024061599887766。")
    assert len(row.pieces) >= 2  # streamed in more than one piece
    assert row.finished is not None
    assert row.finished["finish_reason"] == "stop"
    assert row.finished["confidence"] > 0.9
    assert row.finished["completion_tokens"] > 0
    assert row.finished["prompt_tokens"] > row.finished["completion_tokens"]  # it counts the text read


def test_reads_the_amount_and_the_status(backend: OcrLiteBackend) -> None:
    png = order_screenshot(status="已发货", amount="¥2,468.50")
    amount, status, english = run(backend, ask("实付金额是多少?", png), ask("订单状态是什么?", png),
                                  ask("What is the total amount?", png))
    assert "¥2,468.50" in amount.text
    assert "已发货" in status.text
    assert english.text.startswith("The amount is ¥2,468.50.")


def test_reads_invoice_number_amount_and_date(backend: OcrLiteBackend) -> None:
    png = invoice_screenshot(invoice_no="No.77120034", amount="¥3,210.00", date="2024年06月01日")
    number, total, date = run(backend, ask("What is the invoice number?", png), ask("合计金额?", png),
                              ask("开票日期是哪天?", png))
    assert "No.77120034" in number.text
    assert "¥3,210.00" in total.text
    assert "2024年06月01日" in date.text


def test_caption_describes_the_page_and_contains_the_order_number(backend: OcrLiteBackend) -> None:
    [row] = run(backend, ask("Describe this image", order_screenshot()))
    assert "750×1000 portrait" in row.text
    assert "2024052011223344" in row.text
    assert row.text.index("订单详情") < row.text.index("2024052011223344")
    assert len(row.pieces) > 5


def test_how_many_cats_is_answered_honestly(backend: OcrLiteBackend) -> None:
    [row] = run(backend, ask("图中有几只猫?", order_screenshot()))
    assert "看不到物体、人物、动物" in row.text
    assert "2024052011223344" in row.text  # and it says what it read


def test_a_photo_without_text_is_described_by_its_facts(backend: OcrLiteBackend) -> None:
    [row] = run(backend, ask("What is in this picture?", photo_like_image()))
    assert "640×480 landscape" in row.text
    assert "no text" in row.text
    assert row.finished is not None and row.finished["confidence"] is None


def test_no_image_asks_for_one(backend: OcrLiteBackend) -> None:
    [row] = run(backend, ask("订单号是多少?"))
    assert "请附上一张图片" in row.text


def test_max_tokens_cuts_the_answer_and_reports_length(backend: OcrLiteBackend) -> None:
    [row] = run(backend, ask("Describe this image", order_screenshot(), max_tokens=6))
    assert row.finished is not None
    assert row.finished["finish_reason"] == "length"
    assert row.finished["completion_tokens"] == 6
    assert row.text == "This is a 750×1000"


def test_json_object_returns_the_fields_read(backend: OcrLiteBackend) -> None:
    [row] = run(backend, ask("提取字段", order_screenshot(), response_format={"type": "json_object"}))
    fields = json.loads(row.text)
    assert fields["订单号"] == "2024052011223344"
    assert fields["实付金额"] == "¥1,299.00"
    assert fields["订单状态"] == "待发货"
    assert len(row.pieces) > 1


def test_json_schema_that_cannot_be_filled_fails_only_its_own_request(backend: OcrLiteBackend) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "pets", "schema": {
        "type": "object", "properties": {"cat_count": {"type": "integer"}}}}}
    bad, good = run(backend, ask("猫", order_screenshot(), response_format=schema),
                    ask("订单号是多少?", order_screenshot()))
    assert isinstance(bad.error, UnsupportedParameterError)
    assert "2024052011223344" in good.text


def test_an_unreadable_image_fails_only_its_own_request(backend: OcrLiteBackend) -> None:
    broken = GenerationRequest("b", [ChatMessage(role="user", content=[  # type: ignore[list-item]
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
        {"type": "text", "text": "订单号?"}])])
    bad, good = run(backend, broken, ask("订单号是多少?", order_screenshot()))
    assert isinstance(bad.error, InvalidImageError)
    assert good.finished is not None


def test_a_cancelled_request_is_finished_without_output(backend: OcrLiteBackend) -> None:
    gone, kept = run(backend, ask("描述", order_screenshot()), ask("订单号是多少?", order_screenshot()),
                     cancelled=frozenset({0}))
    assert gone.pieces == [] and gone.finished is not None
    assert "2024052011223344" in kept.text


def test_check_request_refuses_an_unknown_response_format(backend: OcrLiteBackend) -> None:
    with pytest.raises(UnsupportedParameterError):
        backend.check_request(ask("x", response_format={"type": "yaml"}))


def test_a_follow_up_question_uses_the_last_image_the_user_sent() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    messages = [
        ChatMessage(role="user", content=[image, {"type": "text", "text": "订单号?"}]),  # type: ignore[list-item]
        ChatMessage(role="assistant", content="订单号是 1。"),
        ChatMessage(role="user", content="金额呢?"),
    ]
    assert last_user_turn(messages) == ("金额呢?", ["data:image/png;base64,AA=="])
