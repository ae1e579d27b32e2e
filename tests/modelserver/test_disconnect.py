"""Client disconnects over real HTTP (uvicorn in a thread): the backend stops decoding the row."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from devkit.processes import ThreadedServer
from tests.modelserver.conftest import build_app, chat
from tests.support.fake_backend import FakeBackend

LONG = "say:" + "z" * 400  # 400 decode steps of 10 ms: far longer than the test waits


def wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_disconnecting_stream_client_cancels_its_row() -> None:
    backend = FakeBackend(step_s=0.01, token_chars=1)
    app, _ = build_app(backend)
    with ThreadedServer(app) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        request_id = "disconnect-stream"
        with client.stream("POST", "/v1/chat/completions", json=chat(LONG, stream=True),
                           headers={"X-Request-ID": request_id}) as response:
            lines = response.iter_lines()
            received = [line for _, line in zip(range(10), lines, strict=False)]
            assert any('"content":"z"' in line for line in received)
        # Leaving the block closes the connection mid-stream.
        wait_for(lambda: request_id in backend.cancel_seen_at)
        steps_at_cancel = backend.decode_steps[request_id]
        time.sleep(0.2)
        assert backend.decode_steps[request_id] == steps_at_cancel, "kept decoding after the cancel"
        assert steps_at_cancel < 100  # of 400


def test_disconnecting_non_stream_client_cancels_its_row() -> None:
    backend = FakeBackend(step_s=0.01, token_chars=1)
    app, _ = build_app(backend)
    with ThreadedServer(app) as server:
        request_id = "disconnect-plain"
        with contextlib.suppress(httpx.ReadTimeout):  # the client gives up and closes its connection
            httpx.post(server.base_url + "/v1/chat/completions", json=chat(LONG), timeout=0.3,
                       headers={"X-Request-ID": request_id})
        wait_for(lambda: request_id in backend.cancel_seen_at)
        assert backend.decode_steps[request_id] < 100


def test_other_rows_of_the_batch_continue_after_a_disconnect() -> None:
    backend = FakeBackend(step_s=0.005, token_chars=1)
    app, _ = build_app(backend, max_wait_ms=200)
    with ThreadedServer(app) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        result: dict[str, httpx.Response] = {}
        survivor = threading.Thread(target=lambda: result.setdefault(
            "ok", client.post("/v1/chat/completions", json=chat("say:" + "k" * 60))))
        survivor.start()
        with httpx.Client(base_url=server.base_url, timeout=10) as leaver, leaver.stream(
            "POST", "/v1/chat/completions", json=chat(LONG, stream=True),
            headers={"X-Request-ID": "leaver"},
        ) as response:
            lines = response.iter_lines()
            while '"content":"z"' not in next(lines):  # decoding: the batch has started
                pass
        survivor.join(10)
        assert result["ok"].json()["choices"][0]["message"]["content"] == "k" * 60
        assert backend.batch_sizes == [2]  # they really shared a batch
        assert backend.decode_steps["leaver"] < 60


# -- the real thing: transformers backend, real model, real uvicorn ----------------------------


@pytest.mark.integration
def test_disconnect_stops_decode_steps_on_the_real_transformers_backend() -> None:
    """SmolLM2 through the reasoner's transformers backend: forward passes stop after a disconnect."""
    from reasoner.config import ReasonerSettings
    from reasoner.main import create_app

    app = create_app(ReasonerSettings(model="embedded:smollm2", device="cpu"))
    with ThreadedServer(app, startup_timeout=240) as server:
        backend = app.state.backend
        forward_calls: list[float] = []  # one entry per model forward (prefill or decode step)
        hook = backend.model.register_forward_hook(lambda *_: forward_calls.append(time.monotonic()))
        try:
            body = chat("Write a long story about a dragon who learns to bake bread.", stream=True)
            body.update(max_tokens=400, temperature=0)
            with httpx.Client(base_url=server.base_url, timeout=60) as client, client.stream(
                "POST", "/v1/chat/completions", json=body
            ) as response:
                assert response.status_code == 200
                contents = 0
                for line in response.iter_lines():
                    contents += '"content":"' in line and '"content":""' not in line
                    if contents >= 5:
                        break
            disconnected_at = time.monotonic()  # leaving the block closed the connection
            steps_before = sum(t <= disconnected_at for t in forward_calls)
            time.sleep(1.5)  # SmolLM2 makes ~10-20 steps/s here: ~20 more had it kept going
            steps_after = sum(t > disconnected_at for t in forward_calls)
            assert steps_before >= 5
            # At most the step in flight and the one that notices the cancelled row.
            assert steps_after <= 2, f"{steps_after} decode steps after the client left"
            # The engine is free again: a new request is answered.
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                answer = client.post("/v1/chat/completions", json={**chat("Say hi."), "max_tokens": 4})
            assert answer.status_code == 200
        finally:
            hook.remove()
