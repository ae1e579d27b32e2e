"""Model service settings: defaults, a service's own env prefix, and clear start-up errors."""

from __future__ import annotations

import pytest
from modelserver.config import ModelServerSettings
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict


class VisionLikeSettings(ModelServerSettings):
    model_config = SettingsConfigDict(env_prefix="TESTSVC_", extra="ignore")

    port: int = 8081
    backend: str = "ocr-lite"


def test_defaults() -> None:
    settings = VisionLikeSettings()
    assert (settings.host, settings.port, settings.backend) == ("127.0.0.1", 8081, "ocr-lite")
    assert (settings.max_batch_size, settings.max_wait_ms, settings.max_queue) == (4, 10, 64)
    assert settings.max_request_bytes == 32 * 1024 * 1024 and settings.max_wait_s == 0.01
    assert settings.model is None and settings.device == "auto" and settings.dtype == "auto"


def test_subclass_reads_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTSVC_PORT", "9100")
    monkeypatch.setenv("TESTSVC_DEVICE", "CUDA:1")
    monkeypatch.setenv("TESTSVC_MODEL", "")
    monkeypatch.setenv("TESTSVC_LOG_LEVEL", "DEBUG")
    settings = VisionLikeSettings()
    assert settings.port == 9100 and settings.device == "cuda:1"
    assert settings.model is None and settings.log_level == "debug"


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("DEVICE", "gpu", "auto, cpu, cuda or cuda:N"),
        ("DTYPE", "int8", "dtype"),
        ("PORT", "70000", "port"),
        ("MAX_BATCH_SIZE", "0", "max_batch_size"),
        ("MAX_WAIT_MS", "-1", "max_wait_ms"),
        ("LOG_LEVEL", "loud", "log_level"),
        ("BACKEND", "", "backend"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(f"TESTSVC_{field}", value)
    with pytest.raises(ValidationError, match=needle):
        VisionLikeSettings()
