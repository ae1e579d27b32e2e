"""SSRF-safe image fetching: the only place the gateway dereferences a caller's URL.

Every hop (the first URL and each redirect) is checked before any connection:
scheme allowlist, no credentials or parsing tricks, optional domain allowlist, and
every address the host resolves to must be public. Bytes and time are capped.

Pinning: aiohttp connects only to the addresses its resolver returns, so the resolver
here *is* the check (resolve → vet every address → return exactly those). The address
vetted is the address dialled; there is no second lookup for DNS rebinding to exploit,
and TLS still verifies the certificate against the URL's name (aiohttp sets SNI and
Host from the URL, not from the resolved address). IP-literal hosts bypass aiohttp's
resolver, so they are vetted while parsing the URL. aiohttp was picked over httpx for
this: httpx would need a custom transport re-implementing connect + SNI overrides.

Exceptions (``.code``, ``.message``)::

    FetchError
    ├── BlockedURLError      scheme, credentials, parsing trick, allowlist, non-public address (400)
    ├── FetchFailedError     unreachable, HTTP error, not an image type, timeout, redirect loop (400)
    └── FetchTooLargeError   body over max_bytes (413)

An ``application/octet-stream`` body is sniffed; bytes that are not an accepted image
raise :class:`gateway.images.normalise.UnsupportedImageFormatError` (an ``ImageError``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway.images.normalise import sniff_format

if TYPE_CHECKING:
    from gateway.config import ImageSettings

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> [ip, ...]``; injectable so tests never touch real DNS."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_URL_LENGTH = 2048
_UNSAFE_CHARS = re.compile(r"[\\\x00-\x20\x7f-\U0010ffff]")  # backslash, controls, spaces, non-ASCII
_HOST_CHARS = re.compile(r"[a-z0-9._:-]+")  # names and (unbracketed) IPv6; no %-escapes
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")  # 2130706433, 0x7f.1, 017700000001, 127.1
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPAT = ipaddress.ip_network("::/96")

# Why an address is refused, most specific first; the first match names the reason.
_BLOCK_REASONS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local (cloud metadata lives at 169.254.169.254)", lambda ip: ip.is_link_local),
    ("shared CGNAT (100.64.0.0/10)", lambda ip: ip in _CGNAT),
    ("multicast", lambda ip: ip.is_multicast),
    ("site-local", lambda ip: getattr(ip, "is_site_local", False)),
    ("reserved", lambda ip: ip.is_reserved),
    ("private", lambda ip: ip.is_private),
    ("non-public", lambda ip: not ip.is_global),
)


class FetchError(Exception):
    """An image URL the gateway will not or could not fetch."""

    code = "image_fetch_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BlockedURLError(FetchError):
    """Refused before connecting: scheme, credentials, trick, allowlist or non-public address."""

    code = "image_url_blocked"


class FetchFailedError(FetchError):
    """The upstream could not deliver an image (unreachable, HTTP error, timeout, ...)."""

    code = "image_fetch_failed"


class FetchTooLargeError(FetchError):
    """The body is larger than the policy allows."""

    code = "image_too_large"


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What the fetcher may reach; the gateway builds one from its Settings."""

    allow_http: bool = False
    allowed_domains: tuple[str, ...] = ()  # empty: any public host; else exact or subdomain match
    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 10.0  # whole fetch, all redirects included
    max_redirects: int = 3
    # Tests only: accept *loopback* answers from an injected resolver for a host *name*, so a
    # 127.0.0.1 test server is reachable. IP literals and every other range stay blocked,
    # and ImageFetcher refuses this flag without an injected resolver.
    allow_private_for_tests: bool = False
    user_agent: str = "FlashSight-gateway/1 (+image fetch)"

    @classmethod
    def from_settings(cls, images: ImageSettings) -> FetchPolicy:
        """The policy of ``GATEWAY_ALLOW_HTTP_IMAGES``, ``_IMAGE_DOMAIN_ALLOWLIST``, ``_IMAGE_FETCH_*``."""
        return cls(
            allow_http=images.allow_http_images,
            allowed_domains=images.image_domain_allowlist,
            max_bytes=images.max_image_bytes,
            timeout_s=images.image_fetch_timeout_s,
        )

    @property
    def schemes(self) -> tuple[str, ...]:
        return ("https", "http") if self.allow_http else ("https",)


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be dialled (None when it is a public unicast address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and (inner := blocked_reason(embedded)):
            return f"{inner} (IPv4 {embedded} embedded in IPv6)"
    return next((reason for reason, matches in _BLOCK_REASONS if matches(ip)), None)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in mapped, compatible, 6to4, NAT64 or Teredo forms."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _literal_address(host: str) -> tuple[IPAddress, bool] | None:
    """(address, canonical?) if ``host`` is an IP literal in any spelling inet_aton accepts."""
    try:
        return ipaddress.ip_address(host.strip("[]")), True
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host)), False
        except OSError:
            return None
    return None


def _where(url: URL) -> str:
    """A loggable form of a URL: no credentials, no query (signed URLs carry secrets there)."""
    port = f":{url.explicit_port}" if url.explicit_port else ""
    return f"{url.scheme}://{url.raw_host}{port}{url.raw_path}"


def check_url(url: str, policy: FetchPolicy) -> URL:
    """Parse and vet one URL without any network access; raise BlockedURLError if refused."""
    if len(url) > _MAX_URL_LENGTH:
        raise BlockedURLError(f"image URL is longer than {_MAX_URL_LENGTH} characters")
    if bad := _UNSAFE_CHARS.search(url):
        raise BlockedURLError(
            f"image URL contains {bad.group()!r}; backslashes, spaces, control and non-ASCII "
            "characters are not allowed (percent-encode them, use punycode for names)"
        )
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise BlockedURLError(f"image URL could not be parsed ({exc})") from exc
    scheme = parsed.scheme.lower()
    if scheme not in policy.schemes:
        allowed = " or ".join(f"{s}://" for s in policy.schemes)
        raise BlockedURLError(f"image URL scheme {scheme or '(none)'!r} is not allowed; use {allowed}")
    if "@" in (parsed.raw_authority or "") or parsed.raw_user or parsed.raw_password:
        raise BlockedURLError("image URL contains credentials (user@host); they are not allowed")
    host = (parsed.raw_host or "").lower().rstrip(".")
    if not host:
        raise BlockedURLError("image URL has no host")
    if not _HOST_CHARS.fullmatch(host):
        raise BlockedURLError(f"image host {host!r} may contain only letters, digits, '.', '-' and '_'")
    if policy.allowed_domains and not any(
        host == d or host.endswith("." + d) for d in (d.lower().strip(".") for d in policy.allowed_domains)
    ):
        raise BlockedURLError(
            f"image host {host!r} is not in the allowed domains: {', '.join(policy.allowed_domains)}"
        )
    if literal := _literal_address(host):
        ip, canonical = literal
        if reason := blocked_reason(ip):
            raise BlockedURLError(f"image host {host} is {ip}, a {reason} address; only public hosts")
        if not canonical:
            raise BlockedURLError(f"image host {host} is an unusual spelling of {ip}; write {ip}")
    return parsed


async def resolve_with_getaddrinfo(host: str, port: int) -> list[str]:
    """The production resolver: the system's getaddrinfo, off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


RESOLVED_NOT_PUBLIC = (
    "image host {host} is refused by the public-address rule: every address an image host "
    "resolves to must be a public internet address (not loopback, private, link-local or reserved)"
)


class _VettingResolver(AbstractResolver):
    """aiohttp resolver that returns only addresses that passed the check (the pin)."""

    def __init__(self, lookup: Resolver, *, allow_loopback: bool) -> None:
        self._lookup = lookup
        self._allow_loopback = allow_loopback

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        name = host.rstrip(".")
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in await self._lookup(name, port)]
        if not addresses:
            raise OSError(f"{name} has no addresses")
        for ip in addresses:  # every one: a single private answer poisons the set
            reason = blocked_reason(ip)
            if reason and not (self._allow_loopback and ip.is_loopback):
                log.warning("blocked image host %s: resolves to %s (%s)", name, ip, reason)
                # The rule, not the answer: naming the address (or its kind) would make the
                # gateway a DNS lookup service for names only its own network can resolve.
                raise BlockedURLError(RESOLVED_NOT_PUBLIC.format(host=name))
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in addresses
        ]

    async def close(self) -> None:
        return None


class ImageFetcher:
    """Fetches image bytes from caller URLs under a FetchPolicy; one per gateway process."""

    def __init__(self, policy: FetchPolicy, *, resolver: Resolver | None = None) -> None:
        if policy.allow_private_for_tests and resolver is None:
            raise ValueError("allow_private_for_tests needs an injected resolver; it is for tests only")
        self._policy = policy
        self._resolver = _VettingResolver(
            resolver or resolve_with_getaddrinfo, allow_loopback=policy.allow_private_for_tests
        )
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, images: ImageSettings) -> ImageFetcher:
        """The fetcher of :meth:`FetchPolicy.from_settings`'s policy."""
        return cls(FetchPolicy.from_settings(images))

    def _client(self) -> aiohttp.ClientSession:
        # Built lazily so it binds to the running loop; trust_env=False ignores proxy variables.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver, use_dns_cache=False),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout_s),
                headers={"User-Agent": self._policy.user_agent, "Accept": "image/*"},
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> bytes:
        """Return the body of an image URL, following at most ``max_redirects`` vetted redirects."""
        first = check_url(url, self._policy)
        try:
            async with asyncio.timeout(self._policy.timeout_s):
                return await self._follow(first)
        except TimeoutError as exc:
            raise FetchFailedError(
                f"fetching the image from {first.raw_host} took longer than {self._policy.timeout_s:g}s"
            ) from exc

    async def _follow(self, target: URL) -> bytes:
        for _hop in range(self._policy.max_redirects + 1):
            log.debug("fetching image %s", _where(target))
            try:
                async with self._client().get(target, allow_redirects=False) as resp:
                    if resp.status not in _REDIRECTS:
                        return await self._read_image(resp, target)
                    location = resp.headers.get("Location")
            except aiohttp.ClientError as exc:
                if isinstance(exc, asyncio.TimeoutError):
                    raise
                raise FetchFailedError(
                    f"could not fetch the image from {target.raw_host} ({type(exc).__name__})"
                ) from exc
            if not location:
                raise FetchFailedError(f"image URL {_where(target)} redirected without a Location")
            target = check_url(urljoin(str(target), location), self._policy)
        raise FetchFailedError(f"image URL redirected more than {self._policy.max_redirects} times")

    async def _read_image(self, resp: aiohttp.ClientResponse, target: URL) -> bytes:
        where, limit = _where(target), self._policy.max_bytes
        if resp.status != 200:
            raise FetchFailedError(f"image URL {where} answered HTTP {resp.status}, not 200")
        ctype = resp.content_type
        if not (ctype.startswith("image/") or ctype == "application/octet-stream"):
            raise FetchFailedError(f"image URL {where} returned content type {ctype!r}, not image/*")
        if resp.content_length is not None and resp.content_length > limit:
            raise FetchTooLargeError(f"image at {where} is {resp.content_length} bytes; limit is {limit}")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise FetchTooLargeError(f"image at {where} is larger than the limit of {limit} bytes")
        if ctype == "application/octet-stream":
            sniff_format(bytes(body))  # raises UnsupportedImageFormatError naming what it is
        return bytes(body)
