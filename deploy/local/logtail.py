"""Streams new lines of each program's log file to the terminal, prefixed ``[name] ``.

supervisord owns the files (and rotates them); this only reads. Reading starts at each
file's size when the run begins, so earlier runs' lines are not replayed; a file that
shrank was rotated and is read again from its start.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TextIO

_COLOURS = ("36", "35", "33", "32", "34", "31")


class LogTail:
    """A background thread printing every new line of ``files`` (name -> path) to ``out``."""

    def __init__(self, files: dict[str, Path], *, out: TextIO = sys.stdout, interval: float = 0.2) -> None:
        self._files = files
        self._out = out
        self._interval = interval
        self._offsets = {name: _size(path) for name, path in files.items()}
        self._partial: dict[str, bytes] = {name: b"" for name in files}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-tail", daemon=True)
        width = max((len(name) for name in files), default=0)
        colour = out.isatty()
        self._prefix = {
            name: _prefix(name, width, _COLOURS[i % len(_COLOURS)] if colour else None)
            for i, name in enumerate(files)
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Print what is left, then stop."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()

    def poll(self) -> None:
        """Print the lines written since the last call."""
        for name, path in self._files.items():
            for line in self._read_new_lines(name, path):
                self._out.write(f"{self._prefix[name]}{line}\n")
        self._out.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def _read_new_lines(self, name: str, path: Path) -> list[str]:
        size = _size(path)
        if size < self._offsets[name]:  # rotated (or truncated): start over
            self._offsets[name], self._partial[name] = 0, b""
        if size == self._offsets[name]:
            return []
        with path.open("rb") as handle:
            handle.seek(self._offsets[name])
            chunk = handle.read(size - self._offsets[name])
        self._offsets[name] += len(chunk)
        *complete, self._partial[name] = (self._partial[name] + chunk).split(b"\n")
        return [raw.decode("utf-8", "replace").rstrip("\r") for raw in complete]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _prefix(name: str, width: int, colour: str | None) -> str:
    label = f"[{name}]".ljust(width + 2)
    return f"\033[{colour}m{label}\033[0m " if colour else f"{label} "
