"""Fixtures shared by the integration tests that watch the whole stack from outside."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.stack import Stack, running_stack


@pytest.fixture(scope="session")
def json_logged_stack() -> Iterator[Stack]:
    """Redis, vision, reasoner and gateway as real processes, all logging JSON lines (as in compose).

    Shared by the browser test and the log/metrics tests: one start-up for both. Short
    reasoner answers keep it quick on CPU; a generous first-token budget keeps a cold
    reasoner from degrading an answer by accident. The gateway is told the reasoner reads
    Chinese: these tests follow a cascade about a Chinese screenshot through SmolLM2 (the
    default language gate has its own stack in test_grounded_answers.py).
    """
    with running_stack(
        gateway_env={
            "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_REASONER_FIRST_TOKEN_TIMEOUT_S": "90",
            "GATEWAY_REASONER_TIMEOUT_S": "120",
            "GATEWAY_REASONER_LANGUAGES": "zh,en",
        },
        vision_env={"VISION_LOG_FORMAT": "json"},
        reasoner_env={"REASONER_LOG_FORMAT": "json", "REASONER_DEFAULT_MAX_TOKENS": "48"},
    ) as stack:
        yield stack
