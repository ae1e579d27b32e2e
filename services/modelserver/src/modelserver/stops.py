"""Stop-string matching over streamed text, done once here for every backend.

Text arrives in arbitrary pieces (tokens), so a stop string can straddle pieces. The
matcher releases text only once it cannot be the beginning of a stop string, holds back
a possible partial match, and reports a full match so the engine can cut the answer
there and tell the backend to stop decoding that row.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopMatcher:
    """Watches one request's content text for its stop strings."""

    __slots__ = ("_held", "_longest", "_stops", "matched")

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._held = ""
        self.matched = False
        """True once a stop string appeared; the text after it is never released."""

    def feed(self, text: str) -> str:
        """Take newly decoded text and return the part that is safe to show now."""
        if self.matched:
            return ""
        if not self._stops:
            return text
        buffer = self._held + text
        positions = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        if positions:
            self.matched = True
            self._held = ""
            return buffer[: min(positions)]
        hold = self._partial_match_length(buffer)
        self._held = buffer[len(buffer) - hold :]
        return buffer[: len(buffer) - hold]

    def flush(self) -> str:
        """At the end of generation: the held-back text, which turned out not to be a stop string."""
        held, self._held = self._held, ""
        return "" if self.matched else held

    def _partial_match_length(self, buffer: str) -> int:
        # The longest suffix of the buffer that some stop string starts with.
        for size in range(min(len(buffer), self._longest - 1), 0, -1):
            tail = buffer[-size:]
            if any(s.startswith(tail) for s in self._stops):
                return size
        return 0
