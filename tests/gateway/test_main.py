"""gateway.main: the app factory fails early on bad start-up parts, and the lifespan builds the service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gateway.answer.service import AnswerService
from gateway.config import GatewaySettings
from gateway.main import _redacted, create_app


async def test_the_lifespan_builds_the_request_service_from_the_settings(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    app = create_app(make_settings(request_deadline_s=7, max_text_chars=1234, rate_limit_per_minute=5))
    async with app.router.lifespan_context(app):
        service = app.state.service
        assert isinstance(service, AnswerService)
        assert (service.deadline_s, service.max_text_chars) == (7, 1234)
        assert service.vision.name == "vision" and service.reasoner.name == "reasoner"
        assert app.state.rate_limiter is not None and app.state.redis_guard is not None


def test_a_broken_keyword_file_fails_when_the_app_is_built(tmp_path: Path) -> None:
    broken = tmp_path / "kw.toml"
    broken.write_text("zh = [", encoding="utf-8")
    with pytest.raises(ValueError, match="keyword file"):
        create_app(GatewaySettings(keywords_file=broken))


def test_a_redis_password_never_reaches_the_log() -> None:
    assert _redacted("redis://:secret@cache:6379/0") == "redis://***@cache:6379/0"
    assert _redacted("redis://cache:6379/0") == "redis://cache:6379/0"
