"""A small circuit breaker: after N consecutive failures, skip the dependency for a while.

Used for the reasoner (open → answer from vision at once instead of waiting on a dead
upstream) and for Redis (threshold 1: one failure → skip Redis for a few seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures for ``open_s`` seconds, then lets calls try again."""

    def __init__(self, *, threshold: int, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.open_s = open_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    @property
    def state(self) -> str:
        """``closed``, ``open`` (calls skipped) or ``half_open`` (tripped, open time over: the next call is a trial)."""
        if self.is_open:
            return "open"
        return "half_open" if self._failures >= self.threshold else "closed"

    def allow(self) -> bool:
        """Whether a call should be attempted now."""
        return not self.is_open

    def record_success(self) -> bool:
        """Note a success; True when this closes a circuit that had tripped."""
        recovered = self._failures >= self.threshold
        self._failures = 0
        self._open_until = 0.0
        return recovered

    def record_failure(self) -> bool:
        """Note a failure; True when this failure (re)opens the circuit."""
        self._failures += 1
        if self._failures >= self.threshold:
            self._open_until = self._clock() + self.open_s
            return True
        return False
