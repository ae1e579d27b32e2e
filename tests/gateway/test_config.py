from __future__ import annotations

from pathlib import Path

import pytest
from gateway.config import GatewaySettings
from pydantic import ValidationError


def test_defaults() -> None:
    s = GatewaySettings()
    assert (s.server.port, s.upstreams.vision_url, s.upstreams.reasoner_url) == (
        8080,
        "http://127.0.0.1:8081",
        "http://127.0.0.1:9000",
    )
    assert s.answer.caption_ttl_seconds == 7 * 24 * 3600 and s.images.max_images_per_request == 4
    assert s.images.allow_http_images is False and s.server.max_body_bytes == 25 * 1024 * 1024


def test_redis_url_from_either_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://shared:6379/0")
    assert GatewaySettings().redis.redis_url == "redis://shared:6379/0"
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://mine:6379/1")
    assert GatewaySettings().redis.redis_url == "redis://mine:6379/1"


def test_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_IMAGE_DOMAIN_ALLOWLIST", "cdn.example.com, Images.Example.org")
    monkeypatch.setenv("GATEWAY_VISION_URL", "http://vision:8081/")
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "DEBUG")
    s = GatewaySettings()
    assert s.images.image_domain_allowlist == ("cdn.example.com", "images.example.org")
    assert s.upstreams.vision_url == "http://vision:8081" and s.logging.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "value", "says"),
    [
        ("GATEWAY_VISION_URL", "vision:8081", "not an http:// or https:// base URL"),
        ("GATEWAY_REDIS_URL", "localhost:6379", "not a redis:// URL"),
        ("GATEWAY_PORT", "99999", "less than or equal to 65535"),
        ("GATEWAY_CAPTION_PROMPT_VERSION", "9", "known: 1"),
        ("GATEWAY_KEYWORDS_FILE", "/nonexistent/kw.toml", "does not exist"),
    ],
)
def test_bad_config_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, says: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=says):
        GatewaySettings()


def test_keywords_file_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "kw.toml"
    path.write_text('[zh]\nkeywords = ["x"]\n', encoding="utf-8")
    assert GatewaySettings(keywords_file=path).answer.keywords_file == path


def test_sections_group_the_fields_and_a_flat_argument_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_MAX_SIDE", "512")
    monkeypatch.setenv("GATEWAY_SHED_HOLD_ABOVE", "9")
    s = GatewaySettings(max_side=256)
    assert s.images.max_side == 256 and s.shedding.shed_hold_above == 9
    assert GatewaySettings().images.max_side == 512


def test_every_field_keeps_its_flat_variable_name() -> None:
    names = {field.field: field.names for field in GatewaySettings.env_fields()}
    assert names["vision_url"] == ("GATEWAY_VISION_URL",)
    assert names["redis_url"] == ("GATEWAY_REDIS_URL", "REDIS_URL")
    assert names["answer_cache_ttl_s"] == ("GATEWAY_ANSWER_CACHE_TTL_S",)
    assert names["vision_tools"] == ("GATEWAY_VISION_TOOLS",)
    # 50 + issue 13's 10 + the answer cache's 2 + the reasoner's languages + vision's tools
    assert len(names) == 64 and all(n[0].startswith("GATEWAY_") for n in names.values())


def test_answer_cache_is_off_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert GatewaySettings().answer.answer_cache is False
    monkeypatch.setenv("GATEWAY_ANSWER_CACHE", "true")
    monkeypatch.setenv("GATEWAY_ANSWER_CACHE_TTL_S", "600")
    s = GatewaySettings()
    assert s.answer.answer_cache is True and s.answer.answer_cache_ttl_s == 600
    monkeypatch.setenv("GATEWAY_ANSWER_CACHE_TTL_S", "0")
    with pytest.raises(ValidationError, match="answer_cache_ttl_s"):
        GatewaySettings()


def test_image_bytes_may_not_exceed_the_body_limit() -> None:
    with pytest.raises(ValidationError, match="max_image_bytes must not exceed max_body_bytes"):
        GatewaySettings(max_image_bytes=30 * 1024 * 1024, max_body_bytes=20 * 1024 * 1024)
