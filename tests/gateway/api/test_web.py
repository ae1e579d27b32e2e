"""The try-it page: served from the package at / with the right content types, and its config."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, get_args

import httpx
from gateway.api.web import ACCEPTED_MIME_TYPES
from gateway.config import GatewaySettings
from gateway.images.normalise import ACCEPTED_FORMATS
from gateway.schemas import AnswerCacheStatus

from tests.gateway.conftest import gateway_client


def page_config(page: str) -> dict[str, Any]:
    """The JSON the gateway wrote into the page's config block."""
    match = re.search(r'<script id="flashsight-config" type="application/json">(.*?)</script>', page)
    assert match, "the page has no config block"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


async def test_the_page_and_its_assets_are_served_with_their_content_types(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>FlashSight</title>" in page.text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(assets) == ["/static/app.js", "/static/style.css"]
    expected = {"/static/app.js": "javascript", "/static/style.css": "text/css"}
    for path in assets:
        asset = await client.get(path)
        assert asset.status_code == 200, path
        assert expected[path] in asset.headers["content-type"], asset.headers["content-type"]
        assert "charset=utf-8" in asset.headers["content-type"]  # the page text is Chinese and English
        assert len(asset.content) > 1000


async def test_the_page_talks_to_the_public_api(client: httpx.AsyncClient) -> None:
    script = (await client.get("/static/app.js")).text
    assert 'fetch("/v1/chat/completions"' in script
    assert "getReader()" in script  # streamed through fetch + ReadableStream, not EventSource
    for text in ("订单号是多少?", "Copy as curl", "复制 curl 命令"):  # both languages ship
        assert text in script


async def test_the_page_badges_every_answer_cache_outcome(client: httpx.AsyncClient) -> None:
    # The page draws a badge from flashsight.answer_cache (the browser test sees it drawn);
    # every value the gateway can send has a label in both languages.
    script = (await client.get("/static/app.js")).text
    assert "meta.answer_cache" in script and 'badge("answer-cache"' in script
    labels = re.findall(r"answer_cache_values: \{([^}]*)\}", script)
    assert len(labels) == 2  # en and zh
    for outcome in get_args(AnswerCacheStatus):
        for table in labels:
            assert re.search(rf"\b{outcome}: \"[^\"]+\"", table), (outcome, table)


async def test_config_tells_the_page_the_server_limits(make_settings: Callable[..., GatewaySettings]) -> None:
    async with gateway_client(make_settings(max_image_bytes=2 * 1024 * 1024)) as client:
        config = page_config((await client.get("/")).text)
    assert config["max_image_bytes"] == 2 * 1024 * 1024
    assert config["models"][:3] == ["auto", "direct", "cascade"]
    assert config["auth_required"] is False
    # the browser's list and the server's sniffer accept the same formats
    assert {m.split("/")[1].upper() for m in ACCEPTED_MIME_TYPES} == {f.upper() for f in ACCEPTED_FORMATS}


async def test_unknown_static_paths_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/nope.js")).status_code == 404
    assert (await client.get("/static/../config.py")).status_code == 404


async def test_the_page_loads_without_a_key_and_says_one_is_needed(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    async with gateway_client(make_settings(api_keys=("sk-test-1",))) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert (await client.get("/static/app.js")).status_code == 200
        assert page_config(page.text)["auth_required"] is True
        refused = await client.post("/v1/chat/completions", json={"messages": []})
    assert refused.status_code == 401
    assert refused.json()["error"]["message"]  # what the page shows
