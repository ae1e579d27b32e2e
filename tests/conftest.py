"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devkit.processes import ServiceProcess


@pytest.fixture
def service_process() -> Iterator[Any]:
    """A factory: ``service_process(module="vision", port_env="VISION_PORT", env={...})``.

    Each process is started (and waited for) when made, and stopped at teardown even if
    the test failed.
    """
    made: list[ServiceProcess] = []

    def make(*args: Any, **kwargs: Any) -> ServiceProcess:
        process = ServiceProcess(*args, **kwargs)
        made.append(process)
        return process.start()

    yield make
    for process in reversed(made):
        process.close()
