"""A model service made of the shared runtime and :class:`FakeBackend`, runnable as a process.

``python -m tests.support.fake_model_service`` with ``FAKEMODEL_PORT`` etc.: what the
integration tests use to exercise ``create_model_app`` + ``serve.run`` over real HTTP.
"""

from __future__ import annotations

from modelserver.app import create_model_app
from modelserver.config import ModelServerSettings
from modelserver.serve import run
from pydantic_settings import SettingsConfigDict

from tests.support.fake_backend import FakeBackend


class FakeServiceSettings(ModelServerSettings):
    """Settings of the fake service (env prefix ``FAKEMODEL_``)."""

    model_config = SettingsConfigDict(env_prefix="FAKEMODEL_", extra="ignore")

    port: int = 8099
    backend: str = "fake"
    step_ms: float = 10.0
    load_ms: float = 0.0


def build_fake_backend(settings: ModelServerSettings) -> FakeBackend:
    assert isinstance(settings, FakeServiceSettings)
    return FakeBackend(step_s=settings.step_ms / 1000, load_s=settings.load_ms / 1000, confidence=0.75)


BACKENDS = {"fake": build_fake_backend}


def main() -> None:
    settings = FakeServiceSettings()
    run(create_model_app(settings, backends=BACKENDS, title="FlashSight fake model service"), settings)


if __name__ == "__main__":
    main()
