"""Fixtures shared by every test package (imported here so pytest finds them)."""

from tests.support.servers import service_process

__all__ = ["service_process"]
