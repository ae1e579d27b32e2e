"""The try-it page in a real browser against the real stack.

Playwright drives Debian's Chromium headless (``/usr/bin/chromium``; ``make test``
installs it: Playwright's own browser download cannot work here). The page is loaded
from the gateway, a generated order screenshot is picked, the order number is asked
for and must stream in, the badges must say direct / ocr-lite; then a 为什么 question
must go cascade with its keyword shown. The copied curl and Python calls are run for
real, the phone layout is checked, and screenshots are saved to ``artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from devkit.screens import order_screenshot
from devkit.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANSWER_TIMEOUT_MS = 180_000
CASCADE_QUESTION = "为什么这个订单还没有发货?"


def font_config(tmp: Path) -> Path:
    """A fontconfig file adding the CJK font of the test dependencies (Debian's Chromium ships none)."""
    import cvttf_NotoSansCJK_Regular  # type: ignore[import-untyped]

    font_dir = Path(cvttf_NotoSansCJK_Regular.get_TTF_path()).parent
    conf = tmp / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{font_dir}</dir>\n  <cachedir>{tmp / 'fontcache'}</cachedir>\n</fontconfig>\n"
    )
    return conf


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=LAUNCH_ARGS,
            env={**os.environ, "FONTCONFIG_FILE": str(font_config(tmp))},
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, json_logged_stack: Stack) -> Iterator[Page]:
    json_logged_stack.ensure_running()
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(json_logged_stack.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()


def assistant(page: Page, index: int) -> Locator:
    return page.locator(".msg.assistant").nth(index)


def wait_for_answer(page: Page, index: int) -> Locator:
    """The ``index``-th answer once its stream has ended (the final chunk's badges drawn)."""
    answer = assistant(page, index)
    expect(answer.locator('[data-badge="timings"]')).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(answer).not_to_have_class(re.compile(r"\bstreaming\b"))
    return answer


def test_ask_about_a_screenshot_direct_then_cascade(page: Page, tmp_path: Path) -> None:
    order_no = str(uuid.uuid4().int)[:16]  # fresh: nothing cached for this image yet
    image = tmp_path / "order.png"
    image.write_bytes(order_screenshot(order_no=order_no))

    # Chinese UI by default for a zh browser; the toggle switches and switches back
    expect(page.locator("#send")).to_have_text("提问")
    page.click("#lang-toggle")
    expect(page.locator("#send")).to_have_text("Ask")
    page.click("#lang-toggle")

    # a file that is no image is refused before any upload, with a message
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    page.set_input_files("#file-input", str(not_an_image))
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("PNG")

    page.set_input_files("#file-input", str(image))
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#image-info")).to_contain_text("750×1000")

    page.fill("#question", "订单号是多少?")
    page.click("#send")
    first = wait_for_answer(page, 0)
    expect(first.locator(".msg-body")).to_contain_text(order_no)
    expect(first.locator('[data-badge="route"]')).to_contain_text("direct")
    expect(first.locator('[data-badge="models"]')).to_contain_text("ocr-lite")
    expect(first.locator('[data-badge="degraded"]')).to_contain_text("未降级")

    # a follow-up about the same image, with the conversation so far: the keyword picks cascade
    # count how the answer text grows, to see it stream rather than arrive at once (the reasoner
    # writes token by token; ocr-lite's short answer may well fit in one network read)
    page.evaluate(
        """() => {
            window.__answerTexts = new Set();
            new MutationObserver(() => {
                const bodies = document.querySelectorAll('.msg.assistant .msg-body');
                if (bodies.length) window.__answerTexts.add(bodies[bodies.length - 1].textContent);
            }).observe(document.getElementById('conversation'),
                       {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.fill("#question", CASCADE_QUESTION)
    page.click("#send")
    second = wait_for_answer(page, 1)
    assert page.evaluate("window.__answerTexts.size") > 3, "the answer arrived in one piece"
    route = second.locator('[data-badge="route"]')
    expect(route).to_contain_text("cascade")
    expect(route).to_contain_text("为什么")
    expect(second.locator('[data-badge="cache"]')).to_contain_text("未命中")  # first caption of this image
    # no temperature or seed: not deterministic, so the exact answer cache is not looked up
    expect(second.locator('[data-badge="answer-cache"]')).to_contain_text("跳过")
    expect(second.locator('[data-badge="models"]')).to_contain_text("ocr-lite")
    expect(second.locator('[data-badge="models"]')).to_contain_text("reasoner")
    expect(second.locator('[data-badge="timings"]')).to_contain_text("推理")
    assert second.locator(".msg-body").inner_text().strip()
    expect(page.locator("#error")).to_be_hidden()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)

    # the copied calls are the same request: run them for real, forced direct, and read the answer
    page.select_option("#route", "direct")
    page.fill("#question", "订单号是多少?")
    page.click("#copy-curl")
    expect(page.locator("#copy-status")).to_have_text("已复制到剪贴板")
    curl = page.evaluate("navigator.clipboard.readText()")
    assert "/v1/chat/completions" in curl and '"model": "direct"' in curl
    ran = subprocess.run(["bash", "-c", curl], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr
    assert order_no in "".join(re.findall(r'"content":"([^"]*)"', ran.stdout)), ran.stdout[-2000:]
    page.click("#copy-python")
    python = page.evaluate("document.body.dataset.lastCopied")
    assert page.evaluate("navigator.clipboard.readText()") == python
    assert "from openai import OpenAI" in python
    ran = subprocess.run(
        [sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert ran.returncode == 0, ran.stderr
    assert order_no in ran.stdout and "'route': 'direct'" in ran.stdout


def test_errors_show_the_api_message_and_the_page_fits_a_phone(page: Page, tmp_path: Path) -> None:
    image = tmp_path / "order.png"
    image.write_bytes(order_screenshot())
    page.set_viewport_size({"width": 390, "height": 844})
    page.set_input_files("#file-input", str(image))
    # the gateway refusing: whatever it says is what the user reads (here: a full queue)
    message = "the model queue is full (64 requests waiting); retry shortly"
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=503,
            headers={"Content-Type": "application/json", "Retry-After": "2"},
            body=json.dumps(
                {"error": {"message": message, "type": "server_error", "param": None, "code": "overloaded"}}
            ),
        ),
    )
    page.fill("#question", "订单号是多少?")
    page.click("#send")
    expect(page.locator("#error")).to_have_text(message)
    expect(assistant(page, 0).locator(".msg-body")).to_have_text(message)
    page.unroute("**/v1/chat/completions")

    # phone width: nothing wider than the screen, the controls reachable
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for control in ("#send", "#question", "#route", "#dropzone"):
        box = page.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_page_phone.png"), full_page=True)


def sse(*chunks: dict[str, object]) -> str:
    """An SSE body: one ``data:`` event per chunk, then ``[DONE]``."""
    events = [f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n" for chunk in chunks]
    return "".join(events) + "data: [DONE]\n\n"


def test_an_answer_cache_hit_is_shown_on_the_answer(page: Page, tmp_path: Path) -> None:
    # A replayed answer, as the gateway streams one (gateway.answer.responses.cached_stream):
    # which badge the page draws from ``flashsight.answer_cache`` is what this checks.
    meta = {
        "route": "direct", "route_reason": "default", "caption_cache": None, "answer_cache": "hit",
        "degraded": False, "models": {"vision": "ocr-lite", "reasoner": None},
        "timings_ms": {"admission": 3.0, "total": 4.0}, "request_id": "req-replayed",
    }
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "ocr-lite"}
    body = sse(
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "订单号 42"}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "flashsight": meta},
    )
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "X-FlashSight-Route": "direct",
                     "X-FlashSight-Answer-Cache": "hit"},
            body=body,
        ),
    )
    image = tmp_path / "order.png"
    image.write_bytes(order_screenshot())
    page.set_input_files("#file-input", str(image))
    page.fill("#question", "订单号是多少?")
    page.click("#send")
    answer = wait_for_answer(page, 0)
    badge = answer.locator('[data-badge="answer-cache"]')
    expect(badge).to_have_text("答案缓存 命中")
    expect(badge).to_have_class(re.compile(r"\bcache-hit\b"))
    expect(answer.locator('[data-badge="cache"]')).to_contain_text("无")  # no caption step on a replay
    page.click("#lang-toggle")  # badges on screen follow the language
    expect(badge).to_have_text("answer cache hit")
    page.unroute("**/v1/chat/completions")
