"""SSRF end to end: an image URL on a (test-resolved) host that redirects to loopback and metadata
addresses, in every spelling, sent through the gateway's HTTP API.

The gateway runs under a real uvicorn (in a thread) so the fetcher can be given the one
test seam fetch.py has: an injected resolver under which the name ``images.test`` resolves
to this machine's loopback server. Every other name and every IP literal is vetted exactly
as in production. The redirect server records every request it receives: the forbidden
targets point back at it, so "never fetched" is checked, not assumed.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from gateway.config import GatewaySettings, ImageSettings
from gateway.images.fetch import FetchPolicy, ImageFetcher
from gateway.main import create_app
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from devkit.processes import ThreadedServer, free_port
from tests.support.gateway_procs import RedisProcess, stub_process

pytestmark = pytest.mark.integration

DNS = {"images.test": ["127.0.0.1"], "internal.test": ["10.1.2.3"], "meta.test": ["169.254.169.254"]}


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(out, format="PNG")
    return out.getvalue()


class Redirector:
    """``/image.png`` and ``/redirect?to=URL``; ``hits`` lists every path requested."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.port = free_port()
        app = Starlette(
            routes=[
                Route("/image.png", self._image),
                Route("/redirect", self._redirect),
                Route("/secret", self._secret),
            ]
        )
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _image(self, request: Request) -> Response:
        self.hits.append("/image.png")
        return Response(_png(), media_type="image/png")

    async def _redirect(self, request: Request) -> Response:
        self.hits.append("/redirect")
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def _secret(self, request: Request) -> Response:
        self.hits.append("/secret")
        return Response(_png(), media_type="image/png")

    def __enter__(self) -> Redirector:
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="module")
def redirector() -> Iterator[Redirector]:
    with Redirector() as server:
        yield server


@pytest.fixture(scope="module")
def gateway_url(redirector: Redirector) -> Iterator[str]:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in DNS:
            raise OSError(f"test DNS: no such host {host}")
        return DNS[host]

    def fetcher_with_test_dns(images: ImageSettings) -> ImageFetcher:
        from dataclasses import replace

        policy = FetchPolicy.from_settings(images)
        return ImageFetcher(replace(policy, allow_private_for_tests=True), resolver=resolve)

    patch = pytest.MonkeyPatch()
    patch.setattr(ImageFetcher, "from_settings", staticmethod(fetcher_with_test_dns))
    try:
        with (
            RedisProcess() as redis,
            stub_process("ocr-lite") as vision,
            stub_process("stub-reasoner") as reasoner,
        ):
            settings = GatewaySettings(
                vision_url=vision.base_url,
                reasoner_url=reasoner.base_url,
                redis_url=redis.url,
                allow_http_images=True,
            )
            with ThreadedServer(create_app(settings)) as server:
                yield server.base_url
    finally:
        patch.undo()


def _ask(base: str, url: str) -> httpx.Response:
    body: dict[str, Any] = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
    }
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)


def test_the_test_host_itself_is_fetched(gateway_url: str, redirector: Redirector) -> None:
    before = len(redirector.hits)
    resp = _ask(gateway_url, f"http://images.test:{redirector.port}/image.png")
    assert resp.status_code == 200, resp.text
    assert redirector.hits[before:] == ["/image.png"]


@pytest.mark.parametrize(
    ("target", "word"),
    [
        ("http://127.0.0.1:{port}/secret", "loopback"),
        ("http://localhost:{port}/secret", "localhost"),
        ("http://[::1]:{port}/secret", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/secret", "loopback"),
        ("http://2130706433:{port}/secret", "2130706433"),
        ("http://0x7f.0.0.1:{port}/secret", "0x7f.0.0.1"),
        ("http://0177.0.0.1:{port}/secret", "0177.0.0.1"),
        ("http://0.0.0.0:{port}/secret", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://meta.test/latest/meta-data/", "public-address rule"),  # names: the rule, not the address
        ("http://internal.test:{port}/secret", "public-address rule"),
        ("http://user@127.0.0.1:{port}/secret", "credentials"),
        ("file:///etc/passwd", "file"),
    ],
)
def test_redirect_to_a_forbidden_address_is_never_followed(
    gateway_url: str, redirector: Redirector, target: str, word: str
) -> None:
    before = len(redirector.hits)
    location = target.format(port=redirector.port)
    resp = _ask(gateway_url, f"http://images.test:{redirector.port}/redirect?to={quote(location, safe='')}")
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert word.lower() in message.lower(), message
    assert redirector.hits[before:] == ["/redirect"], "the forbidden target was requested"


def test_a_redirect_chain_longer_than_three_is_refused(gateway_url: str, redirector: Redirector) -> None:
    hop = f"http://images.test:{redirector.port}/image.png"
    for _ in range(4):
        hop = f"http://images.test:{redirector.port}/redirect?to={quote(hop, safe='')}"
    resp = _ask(gateway_url, hop)
    assert resp.status_code == 400
    assert "redirect" in resp.json()["error"]["message"]
