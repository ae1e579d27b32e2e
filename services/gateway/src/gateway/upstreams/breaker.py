"""A small circuit breaker: after N consecutive failures, skip the dependency for a while.

Used per upstream (vision and reasoner, see :mod:`gateway.upstreams.guarded`) and for Redis
(threshold 1: one failure → skip Redis for a few seconds).

States: ``closed`` (calls go through) → ``threshold`` consecutive failures → ``open``
(calls skipped for ``open_s``) → ``half_open``: exactly one caller is let through as the
probe; its success closes the circuit, its failure opens it again. A probe that never
reports (its caller was cancelled) expires after ``open_s``, so the circuit cannot wedge.

Why home-made rather than a library: ``purgatory`` (asyncio-native) only offers a scoped
``async with breaker:`` and lets *every* concurrent caller through while half-open (16
streams would all hit a reasoner that just came back), while the gateway also has to
report failures after the call's scope ended (a stream that dies after its first token,
see :mod:`gateway.answer.streaming`) and read the state synchronously for ``/readyz`` and
``/metrics``. ``pybreaker``/``aiobreaker`` are decorator-centred with the same scoping;
the state machine itself is 40 lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures for ``open_s`` seconds, then admits one probe."""

    def __init__(self, *, threshold: int, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.open_s = open_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._probe_until = 0.0  # a half-open probe is in flight until then

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    @property
    def state(self) -> str:
        """``closed``, ``open`` (calls skipped) or ``half_open`` (tripped, open time over: one trial call)."""
        if self.is_open:
            return "open"
        return "half_open" if self._failures >= self.threshold else "closed"

    def retry_in(self) -> float:
        """Seconds until a call may be tried again (0 when one may be tried now)."""
        now = self._clock()
        return max(0.0, self._open_until - now, self._probe_until - now)

    def allow(self) -> bool:
        """Whether a call should be attempted now; in ``half_open`` only the first caller gets True."""
        if self.is_open:
            return False
        if self._failures < self.threshold:
            return True
        now = self._clock()
        if now < self._probe_until:
            return False  # another caller is probing
        self._probe_until = now + max(self.open_s, 0.001)
        return True

    def record_success(self) -> bool:
        """Note a success; True when this closes a circuit that had tripped."""
        recovered = self._failures >= self.threshold
        self._failures = 0
        self._open_until = 0.0
        self._probe_until = 0.0
        return recovered

    def record_failure(self) -> bool:
        """Note a failure; True when this failure (re)opens the circuit."""
        self._failures += 1
        self._probe_until = 0.0
        if self._failures >= self.threshold:
            self._open_until = self._clock() + self.open_s
            return True
        return False
