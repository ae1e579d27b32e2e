"""Tiny random-weight checkpoints of the production architectures, built once per checkout.

Wraps ``scripts/build_tiny_models.py`` (the same code a user runs) so tests can ask for a
checkpoint path; the build is idempotent and lands in the ignored ``.cache/tiny-models``.
"""

from __future__ import annotations

import fcntl
import importlib.util
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_tiny_models.py"
TINY_MODELS_DIR = REPO_ROOT / ".cache" / "tiny-models"
GLM46V_TINY = "glm46v-tiny"
GLM4_CHAT_TINY = "glm4-chat-tiny"


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_tiny_models", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model_path(name: str, *, out: Path = TINY_MODELS_DIR) -> Path:
    """Path of tiny checkpoint ``name``, building it first if it is missing or stale."""
    out.mkdir(parents=True, exist_ok=True)
    # Several pytest processes may ask at once: build under a lock, never twice at a time.
    with (out / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _builder().build_one(name, out)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
