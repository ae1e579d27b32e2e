"""The OpenAI routes over HTTP (in-process): answers, errors in OpenAI shape, readiness, metrics."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from modelserver.app import UnknownBackendError, create_model_app
from modelserver.config import ModelServerSettings

from tests.modelserver.conftest import build_app, chat, serve
from tests.support.fake_backend import FakeBackend


def assert_openai_error(response: httpx.Response, status: int, *, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


async def test_non_streamed_answer_has_usage_and_served_model(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=chat("say:Hello there", model="fake-model"))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "fake-model"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}
    assert "confidence" not in body  # the backend gave none


async def test_confidence_thinking_and_stop_reach_the_response() -> None:
    app, _ = build_app(FakeBackend(step_s=0.001, confidence=0.6))
    async with serve(app) as client:
        response = await client.post("/v1/chat/completions", json=chat(
            "say:yes. no.", stop=". ", chat_template_kwargs={"enable_thinking": True}, temperature=0,
        ))
        body = response.json()
        assert body["confidence"] == 0.6
        assert body["choices"][0]["message"] == {
            "role": "assistant", "content": "yes", "reasoning_content": "thinking",
        }
        top_level = await client.post("/v1/chat/completions", json=chat("say:x", enable_thinking=True))
        assert top_level.json()["choices"][0]["message"]["reasoning_content"] == "thinking"


@pytest.mark.parametrize(
    ("payload", "status", "param", "needle"),
    [
        (chat(n=2), 400, None, "n=2"),
        ({"messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]}, 400,
         "messages.0.content", "'audio'"),
        (chat(model="gpt-4o"), 404, "model", "fake-model"),
        (chat(temperature=5), 400, "temperature", "temperature"),
        ({"messages": []}, 400, "messages", "messages"),
        (chat(chat_template_kwargs={"enable_thinking": "yes"}), 400,
         "chat_template_kwargs.enable_thinking", "valid boolean"),
        (chat(response_format={"type": "json_object"}), 400, "response_format", "not supported"),
        (chat(response_format={"type": "json_schema"}), 400, "response_format.json_schema", "required"),
    ],
)
async def test_bad_requests_get_openai_errors_naming_the_field(
    client: httpx.AsyncClient, payload: dict, status: int, param: str | None, needle: str
) -> None:
    error = assert_openai_error(await client.post("/v1/chat/completions", json=payload), status, param=param)
    assert needle in error["message"]


async def test_wrong_model_is_404_model_not_found(client: httpx.AsyncClient) -> None:
    error = assert_openai_error(await client.post("/v1/chat/completions", json=chat(model="glm-4")), 404)
    assert error["code"] == "model_not_found"
    for alias in ("default", "auto"):
        assert (await client.post("/v1/chat/completions", json=chat(model=alias))).status_code == 200


async def test_malformed_json_says_the_body_must_be_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", content=b'{"messages": [',
                                 headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 400)
    assert "must be JSON" in error["message"] and error["code"] == "invalid_json"


async def test_unknown_route_and_method_are_openai_shaped(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.get("/v1/nope"), 404)
    assert_openai_error(await client.get("/v1/chat/completions"), 405)


async def test_body_over_the_limit_is_413() -> None:
    app, _ = build_app(max_request_bytes=2048)
    async with serve(app) as client:
        response = await client.post("/v1/chat/completions", json=chat("x" * 4000))
        error = assert_openai_error(response, 413)
        assert "2048" in error["message"]

        async def chunked():  # no Content-Length: caught while reading
            for _ in range(10):
                yield b" " * 1000

        assert_openai_error(await client.post("/v1/chat/completions", content=chunked()), 413)


def sse_payloads(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.split("\n\n") if line.startswith("data: ")]


async def test_stream_framing_with_usage(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=chat(
        "say:streamed words", stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "fake-model" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == "streamed words"
    assert len(chunks) > 5  # one chunk per decoded piece, not one blob
    final, usage = chunks[-2], chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 7


async def test_stream_without_usage_option_has_no_usage_chunk(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=chat("say:ab", stream=True))
    chunks = [json.loads(p) for p in sse_payloads(response.text)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_stop_string_split_across_tokens(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=chat("say:keep<|end|>drop", stop=["<|end|>"],
                                                                  stream=True))
    chunks = [json.loads(p) for p in sse_payloads(response.text)[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == "keep" and chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_backend_failure_mid_stream_ends_with_error_event_and_done(client: httpx.AsyncClient) -> None:
    response = await asyncio.wait_for(
        client.post("/v1/chat/completions", json=chat("say:explode", stream=True)), 5
    )
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error["code"] == "backend_error" and "exploded" in error["message"]
    non_stream = await client.post("/v1/chat/completions", json=chat("say:explode"))
    assert_openai_error(non_stream, 500)


async def test_full_queue_is_503_with_retry_after() -> None:
    app, backend = build_app(FakeBackend(step_s=0.01), max_batch_size=1, max_queue=1, max_wait_ms=0)
    async with serve(app) as client:
        long = asyncio.create_task(client.post("/v1/chat/completions", json=chat("say:" + "x" * 60)))
        while not backend.batch_sizes:
            await asyncio.sleep(0.005)
        queued = asyncio.create_task(client.post("/v1/chat/completions", json=chat("say:queued")))
        while app.state.engine.queue_depth < 1:
            await asyncio.sleep(0.005)
        refused = await client.post("/v1/chat/completions", json=chat("say:refused"))
        error = assert_openai_error(refused, 503)
        assert error["code"] == "queue_full" and int(refused.headers["Retry-After"]) >= 1
        assert (await queued).status_code == 200 and (await long).status_code == 200


async def test_readiness_flips_after_warmup() -> None:
    backend = FakeBackend(load_s=0.2, warmup_s=0.2)
    app, _ = build_app(backend)
    async with serve(app, wait_ready=False) as client:
        assert (await client.get("/healthz")).status_code == 200
        loading = await client.get("/readyz")
        assert loading.status_code == 503 and loading.json()["detail"] == "loading"
        assert loading.headers["Retry-After"]
        early = await client.post("/v1/chat/completions", json=chat())
        assert assert_openai_error(early, 503)["code"] == "not_ready"
        while (await client.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.02)
        assert backend.loaded and backend.warmed
        ready = (await client.get("/readyz")).json()
        assert ready == {"status": "ready", "model": "fake-model", "calls_tools": False}
        assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200


async def test_the_app_loads_warms_up_and_serves_the_model_on_one_thread() -> None:
    """Not the event loop's thread nor an executor's: the engine's (see modelserver.engine)."""
    app, backend = build_app()
    async with serve(app) as client:
        assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
    assert set(backend.threads) == {"load", "warmup", "generate"}
    assert len(set(backend.threads.values())) == 1
    assert threading.get_ident() not in backend.threads.values()


async def test_load_failure_is_reported_by_readyz() -> None:
    backend = FakeBackend()

    def broken_load() -> None:
        raise FileNotFoundError("no weights at /models/x")

    backend.load = broken_load  # type: ignore[method-assign]
    app, _ = build_app(backend)
    async with serve(app, wait_ready=False) as client:
        for _ in range(100):
            ready = await client.get("/readyz")
            if ready.json()["status"] == "failed":
                break
            await asyncio.sleep(0.01)
        assert ready.status_code == 503 and "no weights at /models/x" in ready.json()["detail"]


async def test_served_model_name_overrides_the_reported_id() -> None:
    app, _ = build_app(served_model_name="flashsight-vision")
    async with serve(app) as client:
        models = (await client.get("/v1/models")).json()
        assert [m["id"] for m in models["data"]] == ["flashsight-vision"]
        answer = await client.post("/v1/chat/completions", json=chat(model="flashsight-vision"))
        assert answer.json()["model"] == "flashsight-vision"


async def test_request_id_is_taken_or_made_and_returned(client: httpx.AsyncClient) -> None:
    given = await client.post("/v1/chat/completions", json=chat(), headers={"X-Request-ID": "req-42"})
    assert given.headers["x-request-id"] == "req-42"
    made = await client.get("/v1/models")
    assert len(made.headers["x-request-id"]) == 32
    refused = await client.post("/v1/chat/completions", json=chat(model="nope"))
    assert refused.headers["x-request-id"]


async def test_metrics_count_requests_batches_and_tokens(client: httpx.AsyncClient) -> None:
    await asyncio.gather(*(client.post("/v1/chat/completions", json=chat("say:abcd")) for _ in range(3)))
    await client.post("/v1/chat/completions", json=chat(model="nope"))
    text = (await client.get("/metrics")).text
    assert 'flashsight_model_requests_total{endpoint="/v1/chat/completions",status="200"} 3.0' in text
    assert 'flashsight_model_requests_total{endpoint="/v1/chat/completions",status="404"} 1.0' in text
    assert "flashsight_model_generated_tokens_total 6.0" in text
    assert "flashsight_model_batch_size_count" in text
    assert "flashsight_model_queue_depth 0.0" in text
    assert "flashsight_model_time_to_first_token_seconds_count 3.0" in text
    assert "flashsight_model_request_duration_seconds_bucket" in text


async def test_each_app_has_its_own_metrics_registry() -> None:
    first, _ = build_app()
    second, _ = build_app()
    assert first.state.metrics.registry is not second.state.metrics.registry


def test_unknown_backend_fails_at_start_listing_the_known_ones() -> None:
    with pytest.raises(UnknownBackendError, match=r"'nope'.*known backends: a, b"):
        create_model_app(ModelServerSettings(backend="nope"), backends={"b": FakeBackend, "a": FakeBackend},
                         title="t")


async def test_structured_output_report_reaches_plain_and_streamed_responses() -> None:
    from tests.modelserver.test_engine import JsonBackend

    app, _ = build_app(JsonBackend())  # type: ignore[arg-type]
    async with serve(app) as client:
        whole = (await client.post("/v1/chat/completions", json=chat("json"))).json()
        assert json.loads(whole["choices"][0]["message"]["content"]) == {"a": "x}y"}
        assert whole["structured_output"] == {"status": "complete"}
        cut = (await client.post("/v1/chat/completions", json=chat("json", stop="}"))).json()
        assert cut["structured_output"]["status"] == "incomplete"
        assert cut["structured_output"]["reason"] == "stop_string"
        streamed = await client.post("/v1/chat/completions", json=chat("json", stream=True))
        chunks = [json.loads(line[6:]) for line in streamed.text.splitlines()
                  if line.startswith("data: {")]
        final = next(c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason"))
        assert final["structured_output"] == {"status": "complete"}
