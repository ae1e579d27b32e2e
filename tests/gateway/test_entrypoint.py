"""gateway.__main__: a bad setting stops start-up with the variable's own name."""

from __future__ import annotations

import pytest
from gateway.__main__ import _describe, _server
from gateway.config import GatewaySettings
from pydantic import ValidationError


@pytest.mark.parametrize(
    ("env", "value", "says"),
    [
        ("GATEWAY_PORT", "99999", "GATEWAY_PORT: Input should be less than or equal to 65535"),
        ("GATEWAY_VISION_URL", "vision:8081", "GATEWAY_VISION_URL: 'vision:8081' is not an http://"),
        ("GATEWAY_CAPTION_PROMPT_VERSION", "9", "caption_prompt_version '9' is unknown"),
    ],
)
def test_errors_name_the_flat_variable_not_the_section(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, says: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError) as info:
        GatewaySettings()
    assert says in "\n".join(_describe(error) for error in info.value.errors())


def test_the_server_options_come_from_the_server_section() -> None:
    options = _server(
        GatewaySettings(port=9999, keepalive_timeout_s=12.4, max_header_bytes=4096, http_parser="h11")
    )
    assert (options["port"], options["timeout_keep_alive"], options["h11_max_incomplete_event_size"]) == (
        9999,
        12,
        4096,
    )
    assert options["http"] == "h11" and options["access_log"] is False
