"""The requests compose-check sends to the gateway (urllib: no venv needed)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORDER_PNG = Path(__file__).resolve().parents[2] / "examples" / "order.png"
ORDER_NUMBER = "202411250831"
README_QUESTION = "订单号是多少?"  # the README's curl: the direct route, answered by ocr-lite
CASCADE_QUESTION = "为什么这个订单需要付款?"  # "为什么" routes to the cascade (caption + reasoner)


@dataclass
class Answer:
    """One chat completion as the caller saw it."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def content(self) -> str:
        try:
            return str(self.body["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            return ""

    @property
    def degraded(self) -> str:
        return self.headers.get("x-flashsight-degraded", "?")

    @property
    def cache(self) -> str:
        return self.headers.get("x-flashsight-cache", "?")

    @property
    def route(self) -> str:
        return self.headers.get("x-flashsight-route", "?")

    def summary(self) -> str:
        return (
            f"{self.status} route={self.route} cache={self.cache} degraded={self.degraded} "
            f"content={self.content[:60]!r}"
        )


def chat(base_url: str, question: str, *, image: Path = ORDER_PNG, timeout: float = 180) -> Answer:
    """POST the README's request shape: one question and one image as a data: URL, model auto."""
    data_url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    body: dict[str, Any] = {
        "model": "auto",
        # a short answer: SmolLM2 on two shared cores needs well under the gateway's 30 s
        # reasoner timeout for 48 tokens, not for its 512-token default
        "max_tokens": 48,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    }
    request = urllib.request.Request(
        f"{base_url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Answer(
                resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read())
            )
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"raw": raw[:300].decode(errors="replace")}
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, parsed)
    except (OSError, ValueError) as exc:  # refused, reset, timed out: the caller saw no answer
        return Answer(0, {}, {"error": f"{type(exc).__name__}: {exc}"})
