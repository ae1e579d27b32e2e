"""The seed articles' endpoints answer through the same pipeline (routing, cache, degrading)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from gateway.config import GatewaySettings
from gateway.images.normalise import NormalisedImage
from gateway.images.safety import SafetyFilter, SafetyMode
from gateway.main import create_app

from devkit.stub_upstream import StubUpstream
from tests.gateway.conftest import REASONER_MODEL, VISION_MODEL, data_url, gateway_client, unique_png


async def test_infer_direct_reports_vision_confidence(
    client: httpx.AsyncClient, vision: StubUpstream
) -> None:
    vision.behaviour.confidence = 0.93
    resp = await client.post("/infer", json={"image_url": data_url(unique_png()), "prompt": "订单号是多少?"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["text"] == "订单号是 12345" and body["confidence"] == 0.93
    assert body["route"] == "direct" and body["model"] == VISION_MODEL
    assert body["flashsight"]["route_reason"] == "default"


async def test_infer_cascade_has_no_confidence(client: httpx.AsyncClient) -> None:
    resp = await client.post("/infer", json={"image_url": data_url(unique_png()), "prompt": "为什么被拒绝?"})
    body = resp.json()
    assert body["route"] == "cascade" and body["model"] == REASONER_MODEL and body["confidence"] is None


async def test_seed_endpoints_bypass_the_answer_cache(
    make_settings: Callable[..., GatewaySettings], vision: StubUpstream, reasoner: StubUpstream
) -> None:
    # The cache is on and the same question is asked twice on each endpoint: every answer
    # comes from a model call and says bypass (docs/operations.md: seed endpoints bypass).
    image, question = unique_png(), "订单号是多少?"
    async with gateway_client(make_settings(answer_cache=True)) as client:
        calls_before = len(vision.chat_requests()) + len(reasoner.chat_requests())
        for _ in range(2):
            infer = await client.post("/infer", json={"image_url": data_url(image), "prompt": question})
            upload = {"image": ("a.png", image, "image/png")}
            chat = await client.post("/chat", files=upload, data={"text": question})
            multimodal = await client.post(
                "/v1/multimodal/completion", files=upload, data={"prompt": question}
            )
            for resp in (infer, chat, multimodal):
                assert resp.status_code == 200, resp.text
                assert resp.json()["flashsight"]["answer_cache"] == "bypass"
        assert len(vision.chat_requests()) + len(reasoner.chat_requests()) - calls_before == 6
        # the chat API on the same app does cache: the bypass is the seed endpoints', not the setup's
        ask = {"model": "direct", "temperature": 0, "messages": [
            {"role": "user", "content": [{"type": "text", "text": question},
                                         {"type": "image_url", "image_url": {"url": data_url(image)}}]}]}
        first = (await client.post("/v1/chat/completions", json=ask)).json()["flashsight"]["answer_cache"]
        second = (await client.post("/v1/chat/completions", json=ask)).json()["flashsight"]["answer_cache"]
        assert (first, second) == ("miss", "hit")


async def test_infer_missing_field_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/infer", json={"prompt": "x"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "image_url"


async def test_caption_uses_the_cache(client: httpx.AsyncClient, vision: StubUpstream) -> None:
    image = unique_png()
    first = await client.post("/caption", files={"file": ("a.png", image, "image/png")})
    assert first.status_code == 200, first.text
    assert first.json() == {"caption": vision.behaviour.caption, "model": VISION_MODEL, "cache": "miss"}
    second = await client.post("/caption", files={"file": ("a.png", image, "image/png")})
    assert second.json()["cache"] == "hit"


async def test_caption_refuses_a_non_image(client: httpx.AsyncClient) -> None:
    resp = await client.post("/caption", files={"file": ("a.pdf", b"%PDF-1.4 ...", "application/pdf")})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "unsupported_image_format"
    assert resp.json()["error"]["param"] == "file"


async def test_chat_with_image_and_text(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/chat",
        files={"image": ("a.png", unique_png(), "image/png")},
        data={"text": "Why was this rejected?"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["answer"] == body["text"] and body["answer"].startswith("Because")
    assert body["flashsight"]["matched_keyword"] == "why" and body["model"] == REASONER_MODEL


async def test_chat_text_only(client: httpx.AsyncClient) -> None:
    resp = await client.post("/chat", data={"text": "hello"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["flashsight"]["route_reason"] == "no_image"


async def test_multimodal_completion(client: httpx.AsyncClient, reasoner: StubUpstream) -> None:
    await reasoner.stop()
    resp = await client.post(
        "/v1/multimodal/completion",
        files={"image": ("a.jpg", unique_png(), "image/jpeg")},
        data={"prompt": "有什么建议?"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == VISION_MODEL and body["flashsight"]["degraded"] is True
    assert body["text"].startswith("当前仅提供图像描述")


async def test_multimodal_completion_requires_the_image(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/multimodal/completion", data={"prompt": "x"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "image"


class _FlagEverything(SafetyFilter):
    """The safety filter with a detector that finds explicit content in every image (no nudenet)."""

    def __init__(self, mode: SafetyMode) -> None:
        self.mode = mode
        self.threshold = 0.5

    def detect(self, image: NormalisedImage) -> list[dict[str, Any]]:
        return [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.99}]


async def test_caption_is_screened_by_the_safety_filter_before_vision_sees_it(
    make_settings: Callable[..., GatewaySettings], vision: StubUpstream
) -> None:
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        app.state.service.admitter.safety = _FlagEverything("reject")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            resp = await client.post("/caption", files={"file": ("a.png", unique_png(), "image/png")})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "unsafe_image"
    assert vision.chat_requests() == []


async def test_infer_keeps_the_text_cap(
    make_settings: Callable[..., GatewaySettings], vision: StubUpstream
) -> None:
    async with gateway_client(make_settings(max_text_chars=100)) as client:
        resp = await client.post("/infer", json={"image_url": data_url(unique_png()), "prompt": "x" * 101})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "text_too_long"
    assert vision.chat_requests() == []


async def test_infer_keeps_the_request_deadline(
    make_settings: Callable[..., GatewaySettings], vision: StubUpstream
) -> None:
    vision.behaviour.mode = "hang"
    async with gateway_client(make_settings(request_deadline_s=0.3)) as client:
        resp = await client.post(
            "/infer", json={"image_url": data_url(unique_png()), "prompt": "订单号是多少?"}
        )
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"]["code"] == "request_deadline_exceeded"
    assert resp.headers["Retry-After"] == "5"


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the upstream never received the request")


async def test_seed_endpoints_are_counted_and_shed_like_chat(
    vision: StubUpstream, make_settings: Callable[..., GatewaySettings]
) -> None:
    """A slow /caption and /chat hold the count; the next seed requests are capped, greedy, then held."""
    vision.behaviour.latency_s = 0.4  # each request stays in flight a while
    settings = make_settings(
        vision_timeout_s=5.0,
        shed_max_tokens_above=1,
        shed_max_tokens=7,
        shed_greedy_above=1,
        shed_hold_above=2,
        holding_reply="busy, retry",
    )

    def received(marker: str) -> list[dict[str, Any]]:
        return [r for r in vision.chat_requests() if marker in json.dumps(r["messages"])]

    async with gateway_client(settings) as client:
        caption = asyncio.create_task(
            client.post("/caption", files={"file": ("a.png", unique_png(), "image/png")})
        )
        await _until(lambda: len(vision.chat_requests()) == 1)  # 1 in flight: the caption
        chat = asyncio.create_task(
            client.post(
                "/chat", files={"image": ("a.png", unique_png(), "image/png")}, data={"text": "id [b]"}
            )
        )
        await _until(lambda: bool(received("[b]")))  # 2 in flight: the /chat is capped and greedy
        held = await client.post(
            "/v1/multimodal/completion",
            files={"image": ("a.png", unique_png(), "image/png")},
            data={"prompt": "id [c]"},
        )
        held_infer = await client.post(
            "/infer", json={"image_url": data_url(unique_png()), "prompt": "id [d]"}
        )
        assert (await caption).status_code == 200
        shed = await chat

        assert shed.status_code == 200, shed.text
        meta = shed.json()["flashsight"]
        assert meta["load_shedding"] == ["overload_max_tokens", "overload_greedy"] and meta["degraded"]
        sent = received("[b]")[0]
        assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (7, 0.0, 1.0)

        for resp, text_field in ((held, "text"), (held_infer, "text")):
            assert resp.status_code == 200, resp.text
            assert resp.json()[text_field] == "busy, retry"
            assert resp.json()["flashsight"]["degraded_reason"] == "overload_holding_reply"
        assert received("[c]") == [] and received("[d]") == []  # held: no model was called

        # Every seed request left the count: a new one is shed by nothing.
        after = await client.post("/infer", json={"image_url": data_url(unique_png()), "prompt": "id [e]"})
        assert (
            after.json()["flashsight"]["load_shedding"] == [] and not after.json()["flashsight"]["degraded"]
        )
