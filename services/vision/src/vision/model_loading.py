"""Start-up checks for loading a transformers checkpoint: where it is and whether it resolves.

Each failure raises :class:`ModelLoadError` with a message a user can act on (wrong path,
no processor; device and memory checks come from :mod:`modelserver.torch_runtime` and are
re-raised as this error) instead of a transformers traceback ten frames deep.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded; the message says why and what to change."""


def check_model_source(model: str | None, *, setting_name: str) -> str:
    """Fail early on a missing setting or a local path that is not a checkpoint folder."""
    if not model:
        raise ModelLoadError(
            f"{setting_name} is not set: give a local checkpoint folder or a Hugging Face id"
        )
    path = Path(model).expanduser()
    looks_local = path.exists() or model.startswith(("/", ".", "~")) or model.count("/") > 1
    if not looks_local:
        return model  # a hub id: resolved from the local HF cache or the hub by transformers
    if not path.is_dir():
        raise ModelLoadError(
            f"{setting_name}={model!r}: no such folder (expected a checkpoint folder or a HF id)"
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{setting_name}={model!r} is a folder but holds no config.json: not a transformers checkpoint"
        )
    return str(path)


def load_config(model: str, *, setting_name: str, **hub_kwargs: Any) -> Any:
    """The checkpoint's config, with a readable error when the id or path cannot be resolved."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model, **hub_kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{setting_name}={model!r} could not be resolved (not a local checkpoint, not in the "
            "Hugging Face "
            f"cache, and the hub was not reachable or has no such model): {exc}"
        ) from exc
