"""Hostile and broken input through a real ``python -m gateway`` process.

Vision and reasoner are OpenAI stub processes, Redis a private server. Every case
asserts the status code and that the error message names the problem; no case may
produce a 5xx, and the gateway must still be healthy and ready afterwards. Image URLs
that point at loopback/private/metadata addresses (in any spelling) are aimed at a
loopback listener that counts connections: it must never be dialled.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from devkit.processes import ServiceProcess
from tests.support.gateway_procs import ConnectionCounter, RedisProcess, gateway_process, stub_process

pytestmark = pytest.mark.integration

MAX_BODY = 3 * 1024 * 1024


def _png(size: tuple[int, int] = (32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def _bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header claims billions of pixels (decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


PNG = _png()
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
HTML = b"<!DOCTYPE html><html><body>not an image</body></html>"


def _image_msg(url: str, text: str = "What is in this image?") -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


def _chat(messages: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "auto", **extra}
    if messages is not None:
        body["messages"] = messages
    return body


@pytest.fixture(scope="module")
def counter() -> Iterator[ConnectionCounter]:
    with ConnectionCounter() as c:
        yield c


@pytest.fixture(scope="module")
def gateway(counter: ConnectionCounter) -> Iterator[ServiceProcess]:
    with (
        RedisProcess() as redis,
        stub_process("ocr-lite") as vision,
        stub_process("stub-reasoner") as reasoner,
    ):
        env = {"GATEWAY_MAX_BODY_BYTES": str(MAX_BODY), "GATEWAY_MAX_IMAGE_BYTES": str(2 * 1024 * 1024)}
        with gateway_process(vision=vision, reasoner=reasoner, redis=redis, env=env) as gw:
            yield gw


def _ssrf(url: str) -> dict[str, Any]:
    return _chat(_image_msg(url))


def _cases(port: int) -> list[tuple[str, Any, dict[str, str], int, tuple[str, ...]]]:
    """(id, body (dict → JSON, bytes → raw), headers, status, words the message must contain)."""
    ok_text = [{"role": "user", "content": "hello"}]
    p = port
    return [
        ("broken-json", b'{"model": "auto", "messages": [', {}, 400, ("JSON",)),
        ("json-array-body", b"[1, 2, 3]", {}, 400, ("object",)),
        ("not-json-at-all", b"\x00\xff\xfe binary", {}, 400, ("JSON",)),
        ("missing-messages", _chat(), {}, 400, ("messages",)),
        ("empty-messages", _chat([]), {}, 400, ("messages",)),
        ("messages-is-string", _chat("hello"), {}, 400, ("messages",)),
        ("message-not-object", _chat([42]), {}, 400, ("messages",)),
        ("unknown-role", _chat([{"role": "hacker", "content": "x"}]), {}, 400, ("role",)),
        ("content-null", _chat([{"role": "user", "content": None}]), {}, 400, ("content",)),
        ("content-number", _chat([{"role": "user", "content": 12}]), {}, 400, ("content",)),
        (
            "unknown-part-type",
            _chat([{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]),
            {},
            400,
            ("audio",),
        ),
        (
            "image-part-without-url",
            _chat([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            {},
            400,
            ("url",),
        ),
        ("n-2", _chat(ok_text, n=2), {}, 400, ("n=2",)),
        ("negative-max-tokens", _chat(ok_text, max_tokens=-5), {}, 400, ("max_tokens",)),
        ("max-tokens-string", _chat(ok_text, max_tokens="lots"), {}, 400, ("max_tokens",)),
        ("temperature-5", _chat(ok_text, temperature=5), {}, 400, ("temperature",)),
        ("top-p-zero", _chat(ok_text, top_p=0), {}, 400, ("top_p",)),
        ("five-stops", _chat(ok_text, stop=["a", "b", "c", "d", "e"]), {}, 400, ("stop",)),
        ("stream-not-bool", _chat(ok_text, stream=[1]), {}, 400, ("stream",)),
        ("unknown-model", _chat(ok_text, model="gpt-9"), {}, 404, ("gpt-9", "available models")),
        ("bad-route-field", _chat(ok_text, route="fastest"), {}, 400, ("route",)),
        ("bad-route-header", _chat(ok_text), {"X-FlashSight-Route": "fastest"}, 400, ("route",)),
        (
            "conflicting-routes",
            _chat(ok_text, model="direct", route="cascade"),
            {},
            400,
            ("route",),
        ),
        ("oversized-text", _chat([{"role": "user", "content": "x" * 40_000}]), {}, 400, ("characters",)),
        (
            "five-images",
            _chat(
                [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": _data_url(PNG)}}] * 5,
                    }
                ]
            ),
            {},
            400,
            ("5 images", "at most 4"),
        ),
        ("bomb-image", _chat(_image_msg(_data_url(_bomb_png()))), {}, 400, ("pixels",)),
        ("svg-image", _chat(_image_msg(_data_url(SVG, "image/svg+xml"))), {}, 400, ("svg",)),
        ("svg-as-png", _chat(_image_msg(_data_url(SVG))), {}, 400, ("SVG",)),
        ("html-as-png", _chat(_image_msg(_data_url(HTML))), {}, 400, ("HTML",)),
        ("zero-byte-image", _chat(_image_msg("data:image/png;base64,")), {}, 400, ("empty",)),
        ("truncated-png", _chat(_image_msg(_data_url(PNG[: len(PNG) // 2]))), {}, 400, ("truncated",)),
        ("bad-base64", _chat(_image_msg("data:image/png;base64,@@@not*base64@@@")), {}, 400, ("base64",)),
        ("wrong-media-type", _chat(_image_msg(_data_url(PNG, "image/jpeg"))), {}, 400, ("image/jpeg", "PNG")),
        ("text-media-type", _chat(_image_msg(_data_url(PNG, "text/plain"))), {}, 400, ("text/plain",)),
        (
            "image-too-many-bytes",
            _chat(_image_msg(_data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * 1024 * 1024 + 10)))),
            {},
            400,
            ("limit",),
        ),
        ("file-url", _ssrf("file:///etc/passwd"), {}, 400, ("file",)),
        ("ftp-url", _ssrf("ftp://example.com/a.png"), {}, 400, ("ftp",)),
        ("http-not-allowed", _ssrf(f"http://127.0.0.1:{p}/a.png"), {}, 400, ("http",)),
        (
            "metadata-169.254.169.254",
            _ssrf("https://169.254.169.254/latest/meta-data/"),
            {},
            400,
            ("link-local",),
        ),
        ("localhost", _ssrf(f"https://localhost:{p}/a.png"), {}, 400, ("public-address rule",)),
        ("loopback-ip", _ssrf(f"https://127.0.0.1:{p}/a.png"), {}, 400, ("loopback",)),
        ("decimal-ip", _ssrf(f"https://2130706433:{p}/a.png"), {}, 400, ("2130706433",)),
        ("hex-ip", _ssrf(f"https://0x7f000001:{p}/a.png"), {}, 400, ("0x7f000001",)),
        ("octal-ip", _ssrf(f"https://0177.0.0.1:{p}/a.png"), {}, 400, ("0177.0.0.1",)),
        ("short-ip", _ssrf(f"https://127.1:{p}/a.png"), {}, 400, ("127.1",)),
        ("user-at-host", _ssrf(f"https://images.example.com@127.0.0.1:{p}/a.png"), {}, 400, ("credentials",)),
        (
            "backslash-trick",
            _ssrf(f"https://127.0.0.1:{p}\\@images.example.com/a.png"),
            {},
            400,
            ("backslash",),
        ),
        ("ipv6-loopback", _ssrf(f"https://[::1]:{p}/a.png"), {}, 400, ("loopback",)),
        ("ipv4-mapped-ipv6", _ssrf(f"https://[::ffff:127.0.0.1]:{p}/a.png"), {}, 400, ("loopback",)),
        ("zero-address", _ssrf(f"https://0.0.0.0:{p}/a.png"), {}, 400, ("unspecified",)),
        ("private-10", _ssrf("https://10.0.0.1/a.png"), {}, 400, ("private",)),
        ("cgnat", _ssrf("https://100.64.0.1/a.png"), {}, 400, ("CGNAT",)),
        ("ipv6-unique-local", _ssrf("https://[fd00::1]/a.png"), {}, 400, ("private",)),
        (
            "image-url-not-string",
            _chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]),
            {},
            400,
            ("url",),
        ),
    ]


def _send(client: httpx.Client, body: Any, headers: dict[str, str]) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json", **headers}
    )


CASE_IDS = [c[0] for c in _cases(1)]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_hostile_request_gets_a_4xx_that_names_the_problem(
    gateway: ServiceProcess, counter: ConnectionCounter, case_id: str
) -> None:
    _, body, headers, status, words = next(c for c in _cases(counter.port) if c[0] == case_id)
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        resp = _send(client, body, headers)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    for word in words:
        assert word.lower() in error["message"].lower(), error["message"]


def test_huge_body_is_refused_with_413_before_it_is_read(gateway: ServiceProcess) -> None:
    blob = b'{"messages": "' + b"a" * (MAX_BODY + 10) + b'"}'
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        resp = client.post("/v1/chat/completions", content=blob, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert "at most" in resp.json()["error"]["message"]


def test_hostile_suite_left_no_trace(gateway: ServiceProcess, counter: ConnectionCounter) -> None:
    """Runs last: the loopback listener was never dialled, no 5xx in the log, still healthy."""
    assert counter.accepted == 0, "an image URL reached a loopback address"
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        answer = client.post("/v1/chat/completions", json=_chat(_image_msg(_data_url(PNG))))
        assert answer.status_code == 200, answer.text
    assert "unhandled error" not in gateway.log_tail(400)
    assert len(CASE_IDS) + 1 >= 40
