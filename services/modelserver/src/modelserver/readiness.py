"""Where a model service is in its start-up: loading, warming up, ready, or failed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Readiness:
    """The start-up phase ``/readyz`` reports; only ``ready`` accepts generation requests."""

    phase: str = "loading"
    """One of ``loading``, ``warming_up``, ``ready``, ``failed``, ``stopping``."""
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    @property
    def detail(self) -> str:
        # "loading" while the model is not yet warm, as probes and docs expect.
        if self.phase in ("loading", "warming_up"):
            return "loading"
        if self.phase == "failed":
            return f"failed: {self.error}"
        return self.phase
