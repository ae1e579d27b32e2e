"""Issue 13, second hardening round: the hostile bytes of each finding, sent to a real gateway.

The gateway is ``python -m gateway`` with API keys set (the configuration the findings
were made against), in front of recording OpenAI stub processes and a private Redis.
Each test sends the finding's bytes (over a raw socket where HTTP framing matters) and
asserts the safe outcome; none may produce a 5xx.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from devkit.processes import ServiceProcess
from devkit.screens import png_16bit_rgba
from tests.support.gateway_procs import RedisProcess, gateway_process, stub_process

pytestmark = pytest.mark.integration

KEY = "round2-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def stubs() -> Iterator[tuple[ServiceProcess, ServiceProcess, RedisProcess]]:
    with (
        RedisProcess() as redis,
        stub_process("ocr-lite", record=True) as vision,
        stub_process("stub-reasoner", record=True) as reasoner,
    ):
        yield vision, reasoner, redis


def keyed_gateway(stubs: tuple[ServiceProcess, ServiceProcess, RedisProcess], **env: str) -> ServiceProcess:
    vision, reasoner, redis = stubs
    return gateway_process(
        vision=vision, reasoner=reasoner, redis=redis, env={"GATEWAY_API_KEYS": KEY, **env}
    )


@pytest.fixture(scope="module")
def gateway(stubs: tuple[ServiceProcess, ServiceProcess, RedisProcess]) -> Iterator[ServiceProcess]:
    with keyed_gateway(stubs, GATEWAY_LOG_LEVEL="info") as gw:  # info: the access lines are in its log
        yield gw


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **extra}


def _post(gateway: ServiceProcess, body: dict[str, Any] | bytes, **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        return client.post(
            "/v1/chat/completions",
            content=raw,
            headers={"Content-Type": "application/json", **AUTH, **headers},
        )


def _raw(gateway: ServiceProcess, data: bytes, *, wait_s: float = 5.0) -> bytes:
    """Send ``data`` in one ``sendall`` on a fresh socket; everything received until close or ``wait_s``."""
    received = b""
    with socket.create_connection((gateway.host, gateway.port), timeout=wait_s) as sock:
        # Refused and closed while still sending: what was answered is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
    return received


def _statuses(raw: bytes) -> list[int]:
    """The status codes of the responses in ``raw`` (a response may follow a body on its line)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


# --- finding 1: oversized integers ---------------------------------------------------------------

BIG = 18446744073709551616  # 2**64

OVERSIZED_NUMBERS: list[tuple[str, dict[str, Any], str]] = [
    ("seed", _chat(seed=BIG), "seed"),
    ("seed-negative", _chat(seed=-BIG), "seed"),
    ("max-tokens", _chat(max_tokens=BIG), "max_tokens"),
    ("max-completion-tokens", _chat(max_completion_tokens=BIG), "max_completion_tokens"),
    ("seed-streamed", _chat(seed=BIG, stream=True), "seed"),
    ("thousand-digits", _chat(seed=10**1000), "seed"),
    (
        "json-schema",
        _chat(
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": BIG}}},
                },
            }
        ),
        "response_format.json_schema.schema.properties.n.maximum",
    ),
    (
        "json-schema-streamed",
        _chat(
            stream=True,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"enum": [1, BIG]}},
            },
        ),
        "response_format.json_schema.schema.enum.1",
    ),
]


@pytest.mark.parametrize("case", OVERSIZED_NUMBERS, ids=[c[0] for c in OVERSIZED_NUMBERS])
def test_oversized_integer_is_a_400_naming_the_field(
    gateway: ServiceProcess, case: tuple[str, dict[str, Any], str]
) -> None:
    _, body, field = case
    resp = _post(gateway, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "number_out_of_range"
    assert error["param"] == field
    assert error["message"].startswith(f"{field}: ") and "between" in error["message"], error["message"]


def test_oversized_integer_in_an_unknown_field_is_a_400_naming_the_field(gateway: ServiceProcess) -> None:
    # Unknown fields are refused by name (docs/api.md) before any number in them is used.
    resp = _post(gateway, _chat(user_budget=BIG))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "user_budget"


def test_infinity_in_an_extra_field_is_refused(gateway: ServiceProcess) -> None:
    resp = _post(gateway, b'{"model":"auto","messages":[{"role":"user","content":"hi"}],"budget":1e400}')
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "budget"


def test_largest_64_bit_seed_is_still_served(gateway: ServiceProcess) -> None:
    resp = _post(gateway, _chat(seed=2**63 - 1))
    assert resp.status_code == 200, resp.text


# --- finding 3: the header-size cap, whatever the reads look like ----------------------------

GET_MODELS = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n".encode()


def test_one_huge_header_in_a_single_read_is_refused(gateway: ServiceProcess) -> None:
    raw = _raw(gateway, GET_MODELS + b"X-Big: " + b"a" * 120_000 + b"\r\n\r\n")
    assert _statuses(raw) == [431], raw[:300]
    assert b"request line and headers exceed" in raw


def test_ten_thousand_tiny_headers_are_refused(gateway: ServiceProcess) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
    raw = _raw(gateway, GET_MODELS + headers + b"\r\n")
    assert _statuses(raw) == [431], raw[:300]
    assert b"more than 100 request headers" in raw


def test_pipelined_second_request_with_a_huge_header_is_refused(gateway: ServiceProcess) -> None:
    first = GET_MODELS + b"\r\n"
    second = GET_MODELS + b"X-Big: " + b"a" * 250_000 + b"\r\n\r\n"
    raw = _raw(gateway, first + second)
    statuses = _statuses(raw)
    assert 431 in statuses and statuses.count(200) <= 1, raw[-300:]


def test_headers_just_under_the_cap_in_one_read_are_served(gateway: ServiceProcess) -> None:
    raw = _raw(gateway, GET_MODELS + b"X-Pad: " + b"a" * 12_000 + b"\r\nConnection: close\r\n\r\n")
    assert _statuses(raw) == [200], raw[:300]


# --- finding 2: idle and slow connections are not held for ever --------------------------------

HEAD_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def strict_gateway(stubs: tuple[ServiceProcess, ServiceProcess, RedisProcess]) -> Iterator[ServiceProcess]:
    env = {
        "GATEWAY_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "GATEWAY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "GATEWAY_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with keyed_gateway(stubs, **env) as gw:
        yield gw


def _closed_by_server(sock: socket.socket, within_s: float) -> bytes | None:
    """What the server sent before closing the socket, or None if it was still open after ``within_s``."""
    sock.settimeout(within_s)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def test_silent_connections_are_closed_after_the_head_timeout(strict_gateway: ServiceProcess) -> None:
    idle = [socket.create_connection((strict_gateway.host, strict_gateway.port)) for _ in range(15)]
    try:
        started = time.monotonic()
        outcomes = [_closed_by_server(sock, within_s=HEAD_TIMEOUT_S + 3) for sock in idle]
        assert all(out == b"" for out in outcomes), outcomes  # closed, nothing said
        assert time.monotonic() - started < HEAD_TIMEOUT_S + 3
    finally:
        for sock in idle:
            sock.close()


def test_connections_past_the_cap_get_503_and_are_closed(strict_gateway: ServiceProcess) -> None:
    held = [
        socket.create_connection((strict_gateway.host, strict_gateway.port)) for _ in range(MAX_CONNECTIONS)
    ]
    try:
        time.sleep(0.2)  # all accepted by the server
        with socket.create_connection((strict_gateway.host, strict_gateway.port)) as extra:
            answer = _closed_by_server(extra, within_s=3)
        assert answer is not None and _statuses(answer) == [503], answer
        assert b"maximum of 20 connections" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(HEAD_TIMEOUT_S)  # the cap frees as soon as they go: a real client is served again
    with httpx.Client(base_url=strict_gateway.base_url, timeout=10) as client:
        assert client.get("/v1/models", headers=AUTH).status_code == 200


def test_a_trickled_request_head_gets_408(strict_gateway: ServiceProcess) -> None:
    with socket.create_connection((strict_gateway.host, strict_gateway.port)) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            time.sleep(HEAD_TIMEOUT_S / 2)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = _closed_by_server(sock, within_s=HEAD_TIMEOUT_S + 3)
    assert answer is not None and _statuses(answer) == [408], answer
    assert b"did not arrive within 1s" in answer


def test_a_trickled_body_gets_408_and_counts_as_client_gone(strict_gateway: ServiceProcess) -> None:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    with socket.create_connection((strict_gateway.host, strict_gateway.port)) as sock:
        sock.sendall(head + b"{")
        started = time.monotonic()
        answer = _closed_by_server(sock, within_s=BODY_TIMEOUT_S + 3)
    assert answer is not None and _statuses(answer) == [408], answer
    assert BODY_TIMEOUT_S - 0.5 < time.monotonic() - started < BODY_TIMEOUT_S + 3
    assert b"request body did not arrive" in answer


# --- finding 4: the prompt budget counts messages, parts and template markers -------------------


def _recorded(stub: ServiceProcess) -> int:
    with httpx.Client(base_url=stub.base_url, timeout=10) as client:
        return len(client.get("/_stub/requests").json())


def test_six_hundred_thousand_empty_messages_are_refused_before_any_model_call(
    gateway: ServiceProcess, stubs: tuple[ServiceProcess, ServiceProcess, RedisProcess]
) -> None:
    vision, reasoner, _ = stubs
    before = (_recorded(vision), _recorded(reasoner))
    body = b'{"model":"auto","messages":[' + b",".join([b'{"role":"user","content":""}'] * 600_000) + b"]}"
    assert len(body) > 15_000_000
    started = time.monotonic()
    resp = _post(gateway, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "prompt_too_large" and error["param"] == "messages"
    assert "600,000 messages; at most 256" in error["message"]
    assert time.monotonic() - started < 20
    assert (_recorded(vision), _recorded(reasoner)) == before


def test_too_many_content_parts_are_refused(gateway: ServiceProcess) -> None:
    parts = [{"type": "text", "text": ""}] * 65
    resp = _post(gateway, {"model": "auto", "messages": [{"role": "user", "content": parts}]})
    assert resp.status_code == 400, resp.text
    assert "65 content parts together; at most 64" in resp.json()["error"]["message"]


def test_template_markers_count_against_the_text_cap(gateway: ServiceProcess) -> None:
    # 250 x 120 = 30,000 characters of text: under 32,000 by text alone, over it with 16 per message.
    messages = [{"role": "user", "content": "x" * 120}] * 250
    resp = _post(gateway, {"model": "auto", "messages": messages})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "text_too_long" and "34,000 characters" in error["message"]


# --- finding 5: 16-bit images are budgeted by their decoded bytes --------------------------------




def _images_request(*pngs: bytes) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "what is this?"}]
    for png in pngs:
        parts.append(
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
            }
        )
    return {"model": "direct", "messages": [{"role": "user", "content": parts}]}


def _rss_mb(process: ServiceProcess) -> float:
    assert process.pid is not None
    return psutil.Process(process.pid).memory_info().rss / 2**20


def test_four_16_bit_pngs_are_refused_without_decoding(gateway: ServiceProcess) -> None:
    png = png_16bit_rgba(6300, 6300)
    assert len(png) < 400_000  # ~300 KB each, 40 M pixels: under the pixel cap
    before = _rss_mb(gateway)
    resp = _post(gateway, _images_request(png, png, png, png))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "image_too_large"
    assert "4 images take 1211.2 MB decoded together" in error["message"]
    assert _rss_mb(gateway) - before < 150  # the 1.6 MB body and its copies, never the 1.2 GB of pixels
    one = _post(gateway, _images_request(png))  # alone, it is over the per-image budget
    assert one.status_code == 400, one.text
    assert "6300x6300 with 4 channels of 16 bits: 302.8 MB decoded" in one.json()["error"]["message"]


def test_16_bit_images_over_the_request_budget_are_refused(gateway: ServiceProcess) -> None:
    png = png_16bit_rgba(3000, 3000)  # 69 MB decoded each: under the per-image budget
    resp = _post(gateway, _images_request(png, png, png, png))
    assert resp.status_code == 400, resp.text
    assert "decoded together" in resp.json()["error"]["message"]


def test_memory_is_given_back_after_a_large_decode(gateway: ServiceProcess) -> None:
    png = png_16bit_rgba(4000, 4000)  # 122 MB decoded: accepted, normalised to 1024 px
    baseline = _rss_mb(gateway)
    resp = _post(gateway, _images_request(png))
    assert resp.status_code == 200, resp.text
    time.sleep(0.5)
    assert _rss_mb(gateway) - baseline < 120, (baseline, _rss_mb(gateway))


# --- finding 6: no body is read without a key on exempt paths or OPTIONS ------------------------

BIG_DECLARED = 25_000_000  # under the default 25 MB body cap: only not reading it protects


def _answer_before_the_body(gateway: ServiceProcess, method: str, path: str) -> bytes:
    """Declare a 25 MB body, send 64 KB of it, and read what comes back within 3 s (never the rest)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG_DECLARED}\r\n\r\n".encode()
    with socket.create_connection((gateway.host, gateway.port)) as sock:
        sock.sendall(head + b"x" * 65536)
        answer = _closed_by_server(sock, within_s=3)
    assert answer is not None, f"{method} {path}: the gateway waited for the 25 MB body"
    return answer


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/healthz"),
        ("POST", "/readyz"),
        ("PUT", "/"),
        ("POST", "/static/app.js"),
        ("OPTIONS", "/v1/chat/completions"),
        ("OPTIONS", "/healthz"),
    ],
)
def test_unauthenticated_bodies_are_never_read(gateway: ServiceProcess, method: str, path: str) -> None:
    answer = _answer_before_the_body(gateway, method, path)
    assert _statuses(answer) == [405], answer[:300]
    assert b"connection: close" in answer.lower()


# --- finding 7: a client that leaves is a 499, not a 500 ----------------------------------------


def _requests_counted(gateway: ServiceProcess, status: int) -> float:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        text = client.get("/metrics", headers=AUTH).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("flashsight_gateway_requests_total{") and f'status="{status}"' in line
    )


def test_abandoned_requests_count_as_499(gateway: ServiceProcess) -> None:
    errors_before = _requests_counted(gateway, 500)
    gone_before = _requests_counted(gateway, 499)
    for path in ("/healthz", "/v1/chat/completions"):
        for _ in range(5):
            with socket.create_connection((gateway.host, gateway.port)) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
                )
                time.sleep(0.05)
    time.sleep(0.5)
    assert _requests_counted(gateway, 500) == errors_before
    assert _requests_counted(gateway, 499) - gone_before == 5  # the chat requests; /healthz: 405 unread
    access = [line for line in gateway.log_tail(400).splitlines() if "gateway.access" in line]
    assert sum("POST /v1/chat/completions status=499" in line for line in access) >= 5, access[-12:]
    assert not any("status=500" in line for line in access)


# --- finding 9: what is visible without a key ----------------------------------------------------


def test_readyz_without_a_key_says_only_its_status(gateway: ServiceProcess) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        anonymous = client.get("/readyz")
        keyed = client.get("/readyz", headers=AUTH)
    assert anonymous.status_code == keyed.status_code == 200
    assert anonymous.json() == {"status": keyed.json()["status"]}
    assert keyed.json()["vision"]["circuit"] == "closed"  # the detail is there for key holders


def test_metrics_need_a_key(gateway: ServiceProcess) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        anonymous = client.get("/metrics")
        keyed = client.get("/metrics", headers=AUTH)
    assert anonymous.status_code == 401 and "flashsight_gateway" not in anonymous.text
    assert keyed.status_code == 200 and "flashsight_gateway_requests_total" in keyed.text


def test_ssrf_refusal_states_the_rule_not_the_resolved_address(gateway: ServiceProcess) -> None:
    body = {
        "model": "auto",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://localhost:9/a.png"}}],
            }
        ],
    }
    resp = _post(gateway, body)
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert "localhost is refused by the public-address rule" in message
    assert "127.0.0.1" not in message and "::1" not in message


def test_options_does_not_tell_existing_routes_from_missing_ones(gateway: ServiceProcess) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        answers = [client.options(path) for path in ("/v1/chat/completions", "/v1/models", "/no/such/route")]
    assert {a.status_code for a in answers} == {405}
    assert len({a.text for a in answers}) == 1 and len({a.headers.get("allow") for a in answers}) == 1


# --- finding 10: the smaller ones ----------------------------------------------------------------


def test_h2c_upgrade_is_answered_and_the_connection_closed(gateway: ServiceProcess) -> None:
    upgrade = (
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY + "\r\n"
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    ).encode()
    started = time.monotonic()
    raw = _raw(gateway, upgrade + GET_MODELS + b"\r\n")
    assert _statuses(raw)[:1] == [200] and b"connection: close" in raw.lower(), raw[:300]
    assert time.monotonic() - started < 3  # closed, not left hanging with the second request swallowed


@pytest.mark.parametrize(
    "request_line", [b"GET /v1/models HTTP/2.0", b"GET /v1/models", b"GET /v1/models HTTP/0.9"]
)
def test_request_lines_without_http_1_are_refused(gateway: ServiceProcess, request_line: bytes) -> None:
    raw = _raw(gateway, request_line + b"\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n\r\n")
    assert _statuses(raw) == [505], raw[:300]


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz"])
def test_head_is_answered_like_get_without_a_body(gateway: ServiceProcess, path: str) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        resp = client.head(path)
    assert resp.status_code == 200 and resp.content == b""


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_chat_body_not_declared_json_is_415(gateway: ServiceProcess, content_type: str) -> None:
    resp = _post(gateway, _chat(), **{"Content-Type": content_type})
    assert resp.status_code == 415, resp.text
    assert resp.json()["error"]["code"] == "unsupported_media_type"


def test_json_with_a_charset_is_still_accepted(gateway: ServiceProcess) -> None:
    assert _post(gateway, _chat(), **{"Content-Type": "application/json; charset=utf-8"}).status_code == 200


def test_wrong_keys_are_rate_limited_per_address(
    stubs: tuple[ServiceProcess, ServiceProcess, RedisProcess],
) -> None:
    with (
        keyed_gateway(stubs, GATEWAY_AUTH_FAILURES_PER_MINUTE="5") as gw,
        httpx.Client(base_url=gw.base_url, timeout=10) as client,
    ):
        statuses = [
            client.post(
                "/v1/chat/completions", json=_chat(), headers={"Authorization": f"Bearer guess-{i}"}
            ).status_code
            for i in range(8)
        ]
        assert statuses == [401] * 5 + [429] * 3
        limited = client.get("/v1/models", headers={"Authorization": "Bearer guess-x"})
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "too_many_auth_failures"
        assert int(limited.headers["retry-after"]) >= 1
        assert client.get("/v1/models", headers=AUTH).status_code == 200  # a valid key is never held back


def test_the_web_page_sends_security_headers(gateway: ServiceProcess) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        for path in ("/", "/static/app.js", "/static/style.css"):
            headers = client.get(path).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert "script-src 'self'" in headers["content-security-policy"], path
            assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", (
                path
            )
