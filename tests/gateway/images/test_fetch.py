"""Hostile URLs for gateway.images.fetch, against a real aiohttp server on 127.0.0.1 only.

The server is reached through a fake public name that an injected resolver maps to
127.0.0.1 (``allow_private_for_tests``). Every other target (169.254.169.254, 10.x, ...)
must be refused before any connection: no test sends traffic off loopback.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from gateway.images.fetch import (
    BlockedURLError,
    FetchFailedError,
    FetchPolicy,
    FetchTooLargeError,
    ImageFetcher,
    blocked_reason,
    check_url,
)
from gateway.images.normalise import UnsupportedImageFormatError
from PIL import Image

NAME = "images.example.test"  # the fake "public" name of the loopback test server


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 255)).save(buf, format="PNG")
    return buf.getvalue()


PNG = png_bytes()
HTML = b"<!DOCTYPE html><html><body>login page</body></html>"


@dataclass
class FakeDNS:
    """Injected resolver: a fixed name → addresses table that records every lookup."""

    table: dict[str, list[str]]
    lookups: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"fake DNS: no such host {host}")
        return self.table[host]


@dataclass
class Upstream:
    """The loopback test server: base URL by fake name, port, and the requests it saw."""

    port: int
    hits: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    @property
    def base(self) -> str:
        return f"http://{NAME}:{self.port}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.hits]


def build_app(upstream: Upstream) -> web.Application:
    async def record(request: web.Request) -> None:
        upstream.hits.append((request.path, request.headers.get("Host", "")))

    async def image(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=PNG, content_type="image/png")

    async def octet(request: web.Request) -> web.Response:
        await record(request)
        body = HTML if request.query.get("html") else PNG
        return web.Response(body=body, content_type="application/octet-stream")

    async def html(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=HTML, content_type="text/html")

    async def missing(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=404, text="nope")

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, content_type="image/png")

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        await record(request)
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()  # no Content-Length: only the running count can stop it
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"\0" * 1000)
        await resp.write_eof()
        return resp

    async def slow(request: web.Request) -> web.StreamResponse:
        await record(request)
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(PNG[:20])
        await asyncio.sleep(5)  # cancelled when the client gives up
        await resp.write(PNG[20:])
        return resp

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(request.query["to"])

    async def no_location(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=302)

    async def chain(request: web.Request) -> web.Response:
        await record(request)
        left = int(request.match_info["n"])
        raise web.HTTPFound(f"/chain/{left - 1}" if left > 0 else "/img.png")  # relative Location

    async def loop(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPMovedPermanently("/loop")

    app = web.Application()
    app.router.add_get("/img.png", image)
    app.router.add_get("/octet", octet)
    app.router.add_get("/page.png", html)
    app.router.add_get("/missing.png", missing)
    app.router.add_get("/big.png", big)
    app.router.add_get("/big-chunked.png", big_chunked)
    app.router.add_get("/slow.png", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/no-location", no_location)
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/loop", loop)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream(port=0)
    runner = web.AppRunner(build_app(state), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS(
        {
            NAME: ["127.0.0.1"],
            "internal.example.test": ["10.0.0.1"],
            "mixed.example.test": ["127.0.0.1", "10.0.0.1"],
            "metadata.example.test": ["169.254.169.254"],
        }
    )


@dataclass
class Fence:
    """Every socket connect the fetcher attempts; anything off loopback fails the test first."""

    attempts: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture(autouse=True)
async def fence(monkeypatch: pytest.MonkeyPatch) -> Fence:
    loop, seen = asyncio.get_running_loop(), Fence()
    original = loop.sock_connect

    async def guarded(sock: object, address: tuple[str, int]) -> None:
        seen.attempts.append((address[0], address[1]))
        assert ipaddress.ip_address(address[0]).is_loopback, f"test tried to connect to {address}"
        await original(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "sock_connect", guarded)
    return seen


TEST_POLICY = FetchPolicy(allow_http=True, allow_private_for_tests=True, timeout_s=3.0)


@pytest.fixture
async def fetcher(dns: FakeDNS) -> AsyncIterator[ImageFetcher]:
    f = ImageFetcher(TEST_POLICY, resolver=dns)
    try:
        yield f
    finally:
        await f.aclose()


async def fetch_with(policy: FetchPolicy, url: str, dns: FakeDNS | None = None) -> bytes:
    f = ImageFetcher(policy, resolver=dns)
    try:
        return await f.fetch(url)
    finally:
        await f.aclose()


# --- what works ------------------------------------------------------------------------------


async def test_fetches_image_pinned_to_the_vetted_address_with_the_original_host(
    fetcher: ImageFetcher, upstream: Upstream, dns: FakeDNS, fence: Fence
) -> None:
    assert await fetcher.fetch(f"{upstream.base}/img.png") == PNG
    assert fence.attempts == [("127.0.0.1", upstream.port)]  # dialled the vetted address
    assert dns.lookups == [NAME]  # resolved once, by the vetting resolver
    assert upstream.hits == [("/img.png", f"{NAME}:{upstream.port}")]  # Host keeps the name


async def test_octet_stream_is_accepted_when_the_bytes_are_an_image(
    fetcher: ImageFetcher, upstream: Upstream
) -> None:
    assert await fetcher.fetch(f"{upstream.base}/octet") == PNG


async def test_three_relative_redirects_are_followed(fetcher: ImageFetcher, upstream: Upstream) -> None:
    assert await fetcher.fetch(f"{upstream.base}/chain/2") == PNG
    assert upstream.paths() == ["/chain/2", "/chain/1", "/chain/0", "/img.png"]


async def test_allowlisted_suffix_domain_is_fetched(upstream: Upstream, dns: FakeDNS) -> None:
    policy = FetchPolicy(
        allow_http=True, allow_private_for_tests=True, allowed_domains=("example.test",), timeout_s=3.0
    )
    assert await fetch_with(policy, f"{upstream.base}/img.png", dns) == PNG


# --- the default policy never reaches loopback -------------------------------------------------


async def test_default_policy_refuses_a_name_that_resolves_to_loopback(
    upstream: Upstream, dns: FakeDNS, fence: Fence
) -> None:
    with pytest.raises(BlockedURLError) as exc_info:
        await fetch_with(FetchPolicy(allow_http=True), f"{upstream.base}/img.png", dns)
    assert exc_info.value.code == "image_url_blocked"
    # The rule that was hit, never what the name resolved to (no DNS oracle).
    assert "public-address rule" in exc_info.value.message and "127.0.0.1" not in exc_info.value.message
    assert upstream.hits == [] and fence.attempts == []


async def test_default_policy_with_real_resolver_refuses_localhost(upstream: Upstream, fence: Fence) -> None:
    # localhost comes from /etc/hosts: no DNS traffic leaves the machine.
    with pytest.raises(BlockedURLError, match="public-address rule"):
        await fetch_with(FetchPolicy(), f"https://localhost:{upstream.port}/img.png")
    assert upstream.hits == [] and fence.attempts == []


def test_test_seam_cannot_be_enabled_without_an_injected_resolver() -> None:
    with pytest.raises(ValueError, match="injected resolver"):
        ImageFetcher(FetchPolicy(allow_private_for_tests=True))


# --- redirects to forbidden places: refused before connecting ---------------------------------


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("http://127.0.0.1:{port}/img.png", ["127.0.0.1", "loopback"]),
        ("http://169.254.169.254/latest/meta-data/", ["169.254.169.254", "link-local", "metadata"]),
        ("http://[::1]:{port}/img.png", ["::1", "loopback"]),
        ("http://[::ffff:127.0.0.1]:{port}/img.png", ["127.0.0.1", "loopback", "embedded"]),
        ("http://2130706433:{port}/img.png", ["2130706433", "127.0.0.1", "loopback"]),
        ("http://0x7f.1:{port}/img.png", ["0x7f.1", "127.0.0.1", "loopback"]),
        ("http://017700000001:{port}/img.png", ["017700000001", "127.0.0.1", "loopback"]),
        ("http://127.1:{port}/img.png", ["127.0.0.1", "loopback"]),
        ("http://0.0.0.0:{port}/img.png", ["0.0.0.0", "unspecified"]),
        # names: the rule, never the address they resolved to (no DNS oracle)
        ("http://internal.example.test/img.png", ["internal.example.test", "public-address rule"]),
        ("http://metadata.example.test/", ["metadata.example.test", "public-address rule"]),
        ("http://mixed.example.test/img.png", ["mixed.example.test", "public-address rule"]),
        ("http://user@" + NAME + ":{port}/img.png", ["credentials"]),
        ("file:///etc/passwd", ["'file'", "http://"]),
        ("ftp://" + NAME + "/img.png", ["'ftp'"]),
        ("gopher://" + NAME + ":70/_GET", ["'gopher'"]),
    ],
)
async def test_redirect_to_forbidden_target_is_refused(
    fetcher: ImageFetcher, upstream: Upstream, target: str, words: list[str], fence: Fence
) -> None:
    location = target.format(port=upstream.port)
    started = time.perf_counter()
    with pytest.raises(BlockedURLError) as exc_info:
        await fetcher.fetch(f"{upstream.base}/redirect?to={location}")
    assert time.perf_counter() - started < 1.0  # refused, not a connect timeout
    assert exc_info.value.code == "image_url_blocked"
    for word in words:
        assert word in exc_info.value.message, (word, exc_info.value.message)
    assert upstream.paths() == ["/redirect"]  # the forbidden target was never requested
    assert fence.attempts == [("127.0.0.1", upstream.port)]  # only the first hop was dialled


async def test_a_name_with_one_private_answer_is_refused_even_with_a_public_one(
    dns: FakeDNS, fence: Fence
) -> None:
    dns.table["split.example.test"] = ["93.184.216.34", "192.168.1.10"]
    with pytest.raises(BlockedURLError, match=r"split\.example\.test is refused by the public-address rule"):
        await fetch_with(FetchPolicy(), "https://split.example.test/img.png", dns)
    assert fence.attempts == []


# --- URL tricks, rejected while parsing (no network) -------------------------------------------


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("https://" + NAME + "\\@evil.test/img.png", "backslash"),
        ("https://evil.test\\." + NAME + "/img.png", "backslash"),
        ("https://user:secret@" + NAME + "/img.png", "credentials"),
        ("https://" + NAME + "@169.254.169.254/", "credentials"),
        ("https://exa mple.test/img.png", "spaces"),
        ("https://ex%61mple.test/img.png", "letters, digits"),
        ("https://bücher.test/img.png", "non-ASCII"),
        ("https:///img.png", "no host"),
        ("http://" + NAME + "/img.png", "'http'"),  # default policy: https only
        ("data:image/png;base64,AAAA", "'data'"),
        ("javascript:alert(1)", "'javascript'"),
        ("https://" + NAME + ":99999/", "could not be parsed"),
    ],
)
def test_url_tricks_are_refused_while_parsing(url: str, word: str) -> None:
    with pytest.raises(BlockedURLError) as exc_info:
        check_url(url, FetchPolicy())
    assert exc_info.value.code == "image_url_blocked"
    assert word in exc_info.value.message, exc_info.value.message


@pytest.mark.parametrize("host", ["evil.test", "example.test.evil.test", "notexample.test"])
def test_domain_allowlist_is_exact_or_subdomain_only(host: str) -> None:
    with pytest.raises(BlockedURLError, match=r"not in the allowed domains: example\.test"):
        check_url(f"https://{host}/img.png", FetchPolicy(allowed_domains=("example.test",)))


def test_credentials_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.images.fetch")
    with pytest.raises(BlockedURLError) as exc_info:
        check_url("https://admin:hunter2@" + NAME + "/img.png", FetchPolicy())
    assert "hunter2" not in exc_info.value.message and "hunter2" not in caplog.text


# --- upstream misbehaviour ---------------------------------------------------------------------


async def test_non_image_content_type_is_refused(fetcher: ImageFetcher, upstream: Upstream) -> None:
    with pytest.raises(FetchFailedError) as exc_info:
        await fetcher.fetch(f"{upstream.base}/page.png")
    assert exc_info.value.code == "image_fetch_failed"
    assert "text/html" in exc_info.value.message and "image/*" in exc_info.value.message


async def test_octet_stream_that_is_html_is_refused_as_html(
    fetcher: ImageFetcher, upstream: Upstream
) -> None:
    with pytest.raises(UnsupportedImageFormatError, match="HTML"):
        await fetcher.fetch(f"{upstream.base}/octet?html=1")


async def test_http_error_status_is_reported(fetcher: ImageFetcher, upstream: Upstream) -> None:
    with pytest.raises(FetchFailedError, match="HTTP 404"):
        await fetcher.fetch(f"{upstream.base}/missing.png")


async def test_body_over_the_cap_is_refused_from_content_length(upstream: Upstream, dns: FakeDNS) -> None:
    policy = FetchPolicy(allow_http=True, allow_private_for_tests=True, max_bytes=1000)
    with pytest.raises(FetchTooLargeError) as exc_info:
        await fetch_with(policy, f"{upstream.base}/big.png", dns)
    assert exc_info.value.code == "image_too_large"
    assert "5008 bytes" in exc_info.value.message and "limit is 1000" in exc_info.value.message


async def test_chunked_body_over_the_cap_is_cut_while_streaming(upstream: Upstream, dns: FakeDNS) -> None:
    policy = FetchPolicy(allow_http=True, allow_private_for_tests=True, max_bytes=2500)
    with pytest.raises(FetchTooLargeError, match="larger than the limit of 2500 bytes"):
        await fetch_with(policy, f"{upstream.base}/big-chunked.png", dns)


async def test_slow_body_is_cut_at_the_overall_timeout(upstream: Upstream, dns: FakeDNS) -> None:
    policy = FetchPolicy(allow_http=True, allow_private_for_tests=True, timeout_s=0.5)
    started = time.perf_counter()
    with pytest.raises(FetchFailedError) as exc_info:
        await fetch_with(policy, f"{upstream.base}/slow.png", dns)
    assert time.perf_counter() - started < 2.0
    assert exc_info.value.code == "image_fetch_failed"
    assert "longer than 0.5s" in exc_info.value.message


async def test_redirect_loop_stops_after_three_redirects(fetcher: ImageFetcher, upstream: Upstream) -> None:
    with pytest.raises(FetchFailedError, match="more than 3 times"):
        await fetcher.fetch(f"{upstream.base}/loop")
    assert upstream.paths() == ["/loop"] * 4  # the first request plus three followed redirects


async def test_four_redirects_exceed_the_limit(fetcher: ImageFetcher, upstream: Upstream) -> None:
    with pytest.raises(FetchFailedError, match="more than 3 times"):
        await fetcher.fetch(f"{upstream.base}/chain/3")


async def test_redirect_without_location_is_reported(fetcher: ImageFetcher, upstream: Upstream) -> None:
    with pytest.raises(FetchFailedError, match="without a Location"):
        await fetcher.fetch(f"{upstream.base}/no-location")


async def test_unresolvable_name_is_a_fetch_failure(fetcher: ImageFetcher) -> None:
    with pytest.raises(FetchFailedError, match=r"could not fetch the image from nowhere\.example\.test"):
        await fetcher.fetch("http://nowhere.example.test/img.png")


# --- the address classifier (pure: no traffic) -------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("198.18.0.1", "private"),  # benchmarking range
        ("192.0.2.1", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_classified_with_a_reason(address: str, reason: str) -> None:
    got = blocked_reason(ipaddress.ip_address(address))
    assert got is not None and reason in got, (address, got)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:5db8:d822::1"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None
