"""The reasoner's backend dispatch table: ``REASONER_BACKEND`` → factory(settings) → Backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from modelserver.backend import Backend
from modelserver.config import ModelServerSettings

from reasoner.config import ReasonerSettings


def _transformers(settings: ModelServerSettings) -> Backend:
    # Imported on use so the table (and the settings check) costs nothing without torch.
    from reasoner.backends.transformers_backend import TransformersBackend

    assert isinstance(settings, ReasonerSettings)
    return TransformersBackend(settings)


BACKENDS: Mapping[str, Callable[[ModelServerSettings], Backend]] = {
    "transformers": _transformers,
}
