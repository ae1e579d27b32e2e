"""Freed heap memory goes back to the OS after a large decode, on glibc."""

from __future__ import annotations

import platform

import pytest
from gateway.images.memory import TRIM_ABOVE_BYTES, give_back_memory


def test_small_decodes_are_left_to_the_allocator() -> None:
    assert give_back_memory(TRIM_ABOVE_BYTES - 1) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_a_large_decode_returns_freed_memory_to_the_os() -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    blocks = [
        bytearray(64 * 1024) for _ in range(4000)
    ]  # 256 MB in small pieces: kept by the heap when freed
    peak = process.memory_info().rss
    del blocks
    assert give_back_memory(TRIM_ABOVE_BYTES) is True
    assert process.memory_info().rss < peak - 128 * 2**20
