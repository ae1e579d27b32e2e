"""API keys: who may call the gateway.

Keys come from ``GATEWAY_API_KEYS`` (comma-separated) and/or ``GATEWAY_API_KEYS_FILE``
(one per line, ``#`` starts a comment). Only their SHA-256 digests are kept in memory;
a presented key is hashed and compared with :func:`hmac.compare_digest` against *every*
stored digest (no early exit), so timing says nothing about which key or how much of it
matched. No key configured → the gateway is open, which ``create_app`` logs
loudly at start-up.

The caller's identity for rate limiting is a short prefix of the key's digest (never
the key itself), or ``ip:<address>`` when the gateway is open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import AuthenticationError

if TYPE_CHECKING:
    from gateway.config import AuthSettings


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def read_keys_file(path: Path) -> list[str]:
    """The keys in ``path``: one per line, blank lines and ``#`` comments ignored."""
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key = line.split("#", 1)[0].strip()
        if key:
            keys.append(key)
    return keys


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: ``identity`` keys the rate limit."""

    identity: str
    authenticated: bool


class KeyStore:
    """The accepted API keys, as SHA-256 digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(dict.fromkeys(_digest(k) for k in keys if k))

    @classmethod
    def load(cls, keys: Iterable[str], keys_file: Path | None) -> KeyStore:
        """Keys from the setting and the file, merged."""
        return cls([*keys, *(read_keys_file(keys_file) if keys_file else [])])

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> KeyStore:
        """The keys of ``GATEWAY_API_KEYS`` and ``GATEWAY_API_KEYS_FILE`` (an unreadable file fails now)."""
        return cls.load(auth.api_keys, auth.api_keys_file)

    @property
    def open(self) -> bool:
        """No key configured: every caller is let in."""
        return not self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def authenticate(self, authorization: str | None, api_key_header: str | None, client: str) -> Caller:
        """The caller for these headers, or :class:`AuthenticationError` saying what was wrong."""
        if self.open:
            return Caller(identity=f"ip:{client}", authenticated=False)
        presented = _presented_key(authorization, api_key_header)
        digest = _digest(presented)
        matched = False
        for stored in self._digests:  # all of them, always: constant time in which one matched
            matched |= hmac.compare_digest(stored, digest)
        if not matched:
            raise AuthenticationError(
                "incorrect API key provided; send a key the operator configured "
                "(GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE) as 'Authorization: Bearer <key>'"
            )
        return Caller(identity=f"key:{digest.hex()[:16]}", authenticated=True)


def _presented_key(authorization: str | None, api_key_header: str | None) -> str:
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                f"the Authorization header must be 'Bearer <API key>'; got a {scheme[:20]!r} header",
            )
        return token.strip()
    if api_key_header and api_key_header.strip():
        return api_key_header.strip()
    raise AuthenticationError(
        "you did not provide an API key; send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>')"
    )
