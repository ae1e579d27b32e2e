"""gateway.images.safety: off builds nothing; flag reports findings; reject refuses (a fake detector)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from gateway.config import ImageSettings
from gateway.errors import ImageInputError
from gateway.images.normalise import ImageLimits, NormalisedImage, normalise_image
from gateway.images.safety import SafetyFilter, SafetyFilterUnavailableError

from tests.gateway.conftest import unique_png


class FakeDetector:
    """NudeNet's interface: one explicit detection above the threshold and one harmless one."""

    def detect(self, data: bytes) -> list[dict[str, Any]]:
        return [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.91}, {"class": "FACE_FEMALE", "score": 0.99}]


def _filter(mode: str) -> SafetyFilter:
    safety = SafetyFilter.__new__(SafetyFilter)  # no nudenet here: the detector is swapped in
    safety.mode, safety.threshold, safety._detector = mode, 0.6, FakeDetector()  # type: ignore[assignment]
    return safety


def _image() -> NormalisedImage:
    return normalise_image(unique_png(), limits=ImageLimits())


def test_off_builds_no_filter() -> None:
    assert SafetyFilter.from_settings(ImageSettings()) is None


@pytest.mark.skipif(importlib.util.find_spec("nudenet") is not None, reason="nudenet is installed here")
def test_on_without_nudenet_fails_at_start_up_with_the_install_hint() -> None:
    with pytest.raises(SafetyFilterUnavailableError, match="pip install --no-deps nudenet"):
        SafetyFilter.from_settings(ImageSettings(safety_filter="flag"))


async def test_flag_reports_only_explicit_classes_above_the_threshold() -> None:
    report = await _filter("flag").screen([_image()])
    assert report == {"flagged": True, "images": [[{"class": "FEMALE_BREAST_EXPOSED", "score": 0.91}]]}


async def test_reject_is_a_400_naming_the_images() -> None:
    with pytest.raises(ImageInputError, match="image 1, 2 was refused") as info:
        await _filter("reject").screen([_image(), _image()])
    assert info.value.code == "unsafe_image"
