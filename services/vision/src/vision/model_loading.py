"""Start-up checks for loading a transformers checkpoint: where it is, where it runs, whether it fits.

Each failure raises :class:`ModelLoadError` with a message a user can act on (wrong path,
no processor, not enough memory: what was needed and what was free) instead of a
transformers traceback ten frames deep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
GIB = 1024**3
# Weights are not all a model needs (activations, KV cache, allocator slack): refuse when the
# weights alone would leave less than this share of the free memory.
HEADROOM = 1.10


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """How many bytes the weights need on a device, and how many are free there."""

    parameters: int
    needed_bytes: int
    free_bytes: int | None
    device: str

    def describe(self) -> str:
        free = "unknown" if self.free_bytes is None else human_bytes(self.free_bytes)
        return (
            f"{self.parameters:,} parameters × {self.needed_bytes // max(self.parameters, 1)} bytes "
            f"= {human_bytes(self.needed_bytes)} needed on {self.device}; free: {free}"
        )


def human_bytes(count: int) -> str:
    """``1536`` → ``1.5 KiB``; keeps start-up messages readable from tiny models to 20 GB ones."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def resolve_device(setting: str) -> torch.device:
    """``auto`` → the first CUDA GPU when there is one, else the CPU; explicit choices are checked."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {setting!r} was asked for but this torch build sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device {setting!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible"
            )
    return device


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` → bfloat16 on a GPU that supports it (else float16), float32 on the CPU."""
    if setting != "auto":
        return DTYPES[setting]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


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


def estimate_memory(
    model_class: Any, config: Any, dtype: torch.dtype, device: torch.device
) -> MemoryEstimate:
    """Count the parameters on the meta device (no memory used) and compare with what is free."""
    with torch.device("meta"):
        skeleton = model_class._from_config(config, dtype=dtype)
    parameters = sum(p.numel() for p in skeleton.parameters())
    needed = parameters * torch.empty((), dtype=dtype).element_size()
    return MemoryEstimate(parameters, needed, free_memory(device), str(device))


def check_memory(estimate: MemoryEstimate) -> None:
    """Refuse to start when the weights alone would not fit in the device's free memory."""
    log.info("model memory: %s", estimate.describe())
    if estimate.free_bytes is not None and estimate.needed_bytes * HEADROOM > estimate.free_bytes:
        raise ModelLoadError(
            f"not enough memory to load the model: {estimate.describe()} (plus ~10% working room). "
            "Use a smaller dtype (bfloat16), a bigger GPU, or another device"
        )


def free_memory(device: torch.device) -> int | None:
    """Free bytes on ``device`` (CUDA: driver's view; CPU: available RAM), or None if unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)
