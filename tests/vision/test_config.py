from __future__ import annotations

import pytest
from pydantic import ValidationError
from vision.config import VisionSettings


def test_defaults_serve_ocr_lite_on_8081() -> None:
    settings = VisionSettings()
    assert (settings.host, settings.port, settings.backend) == ("127.0.0.1", 8081, "ocr-lite")


def test_settings_come_from_vision_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_PORT", "9191")
    monkeypatch.setenv("VISION_SERVED_MODEL_NAME", "ocr")
    monkeypatch.setenv("MODELSERVER_PORT", "1")  # the base prefix is not the vision service's
    settings = VisionSettings()
    assert (settings.port, settings.served_model_name) == (9191, "ocr")


def test_a_bad_port_fails_at_start_up_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        VisionSettings()


def test_a_pixel_budget_whose_minimum_exceeds_its_maximum_fails_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VISION_IMAGE_MIN_PIXELS", "2000000")
    with pytest.raises(ValidationError, match=r"image_min_pixels \(2000000\) is above image_max_pixels"):
        VisionSettings()
