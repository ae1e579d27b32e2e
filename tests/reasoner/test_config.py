"""Reasoner settings: defaults, env prefix, the served model name and the cache directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from reasoner.config import ReasonerSettings, default_cache_dir


def test_defaults_serve_the_embedded_smollm2_on_port_9000(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REASONER_MODEL", "REASONER_PORT", "REASONER_BACKEND", "REASONER_SERVED_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings = ReasonerSettings()
    assert (settings.port, settings.backend, settings.model) == (9000, "transformers", "embedded:smollm2")
    assert settings.model_name == "smollm2-135m-instruct"
    assert (settings.device, settings.dtype) == ("auto", "auto")


def test_batches_of_8_and_the_cpu_linear_layout_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chosen by measurement (docs/performance.md, "Reasoner on the CPU"); the env still overrides."""
    for name in ("REASONER_MAX_BATCH_SIZE", "REASONER_CPU_LINEAR"):
        monkeypatch.delenv(name, raising=False)
    settings = ReasonerSettings()
    assert (settings.max_batch_size, settings.max_wait_ms, settings.cpu_linear) == (8, 10, True)
    monkeypatch.setenv("REASONER_MAX_BATCH_SIZE", "2")
    monkeypatch.setenv("REASONER_CPU_LINEAR", "false")
    assert (ReasonerSettings().max_batch_size, ReasonerSettings().cpu_linear) == (2, False)


@pytest.mark.parametrize(
    ("model", "served"),
    [
        ("zai-org/glm-4-9b-chat-hf", "glm-4-9b-chat-hf"),
        ("/models/glm-4-9b-chat-hf/", "glm-4-9b-chat-hf"),
        ("./checkpoints/my-chat", "my-chat"),
    ],
)
def test_a_path_or_hub_id_is_served_under_its_last_component(model: str, served: str) -> None:
    assert ReasonerSettings(model=model).model_name == served


def test_served_model_name_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASONER_SERVED_MODEL_NAME", "glm-4")
    assert ReasonerSettings(model="zai-org/glm-4-9b-chat-hf").model_name == "glm-4"


def test_env_prefix_and_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REASONER_PORT", "9123")
    monkeypatch.setenv("REASONER_CACHE_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("REASONER_DTYPE", "BFloat16")
    settings = ReasonerSettings()
    assert settings.port == 9123
    assert settings.cache_dir == (tmp_path / "models").resolve()
    assert settings.dtype == "bfloat16"


def test_the_default_cache_is_in_the_checkout() -> None:
    assert default_cache_dir() == Path(__file__).resolve().parents[2] / ".cache" / "models"


def test_an_unknown_embedded_model_fails_at_start_up_listing_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="embedded:smollm2"):
        ReasonerSettings(model="embedded:llama-70b")


def test_an_empty_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASONER_MODEL", "")
    with pytest.raises(ValidationError, match="REASONER_MODEL"):
        ReasonerSettings()
