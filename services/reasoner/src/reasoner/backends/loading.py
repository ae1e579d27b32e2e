"""Where and how the transformers backend loads its model: checkpoint, device, dtype, tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from modelserver.torch_runtime import (
    TorchRuntimeError,
    check_memory,
    estimate_memory,
    resolve_device,
    resolve_dtype,
)

from reasoner.catalogue import EMBEDDED_PREFIX
from reasoner.config import ReasonerSettings
from reasoner.embedded import lookup, prepare
from reasoner.errors import (
    ChatTemplateMissingError,
    CheckpointNotFoundError,
    ModelLoadError,
    TokenizerMissingError,
)


def resolve_checkpoint(settings: ReasonerSettings) -> str:
    """A directory or HF id transformers can load: embedded models are converted (once) first."""
    model = settings.model_ref
    if model.startswith(EMBEDDED_PREFIX):
        return str(prepare(lookup(model.removeprefix(EMBEDDED_PREFIX)), settings.cache_dir))
    path = Path(model).expanduser()
    looks_local = path.exists() or model.startswith(("/", ".", "~")) or model.count("/") > 1
    if not looks_local:
        return model  # a HF id such as zai-org/glm-4-9b-chat-hf
    if not path.is_dir():
        raise CheckpointNotFoundError(
            f"REASONER_MODEL={model!r}: no such directory (expected a checkpoint directory, "
            "a Hugging Face id, or embedded:smollm2)"
        )
    if not (path / "config.json").is_file():
        raise CheckpointNotFoundError(
            f"REASONER_MODEL={model!r} holds no config.json: not a transformers checkpoint"
        )
    return str(path)


def resolve_placement(settings: ReasonerSettings) -> tuple[torch.device, torch.dtype]:
    """Device and dtype from REASONER_DEVICE / REASONER_DTYPE (rules: :mod:`modelserver.torch_runtime`)."""
    try:
        device = resolve_device(settings.device, setting_name="REASONER_DEVICE")
        return device, resolve_dtype(settings.dtype, device)
    except TorchRuntimeError as exc:
        raise ModelLoadError(str(exc)) from exc


def check_fits(source: str, *, device: torch.device, dtype: torch.dtype) -> None:
    """Refuse before reading weights when they would not fit: what is needed, what is free."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"REASONER_MODEL={source!r}: cannot read its config: {exc}") from exc
    try:
        check_memory(
            estimate_memory(lambda: AutoModelForCausalLM.from_config(config, dtype=dtype), dtype, device)
        )
    except TorchRuntimeError as exc:
        raise ModelLoadError(f"REASONER_MODEL={source!r}: {exc}") from exc


def load_tokenizer(source: str) -> Any:
    """The checkpoint's tokenizer, which must carry a chat template."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as exc:
        raise TokenizerMissingError(f"no usable tokenizer in {source!r}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateMissingError(
            f"the tokenizer of {source!r} has no chat template, so chat messages cannot be rendered; "
            "serve an instruction-tuned (chat) checkpoint"
        )
    return tokenizer


def from_pretrained_kwargs(*, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """How ``from_pretrained`` must load the weights so they land on ``device`` directly.

    On an accelerator a ``device_map`` (served by accelerate) makes transformers put each
    tensor on the device as it is read, as vision's GLM loader does: loading on the CPU
    first and then moving would need the whole model in host RAM (~18 GB for a 9B model
    in bf16). On the CPU the model is loaded as it always was. (``low_cpu_mem_usage`` is
    not passed: transformers 5 ignores it, its loading is always lazy.)
    """
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": False}
    if device.type != "cpu":
        kwargs["device_map"] = str(device)
    return kwargs


def load_model(source: str, *, device: torch.device, dtype: torch.dtype) -> Any:
    """``AutoModelForCausalLM`` in eval mode on ``device`` (no remote code is ever run)."""
    from transformers import AutoModelForCausalLM

    kwargs = from_pretrained_kwargs(device=device, dtype=dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a causal LM from {source!r}: {exc}") from exc
    except torch.OutOfMemoryError as exc:
        raise ModelLoadError(f"out of memory while loading {source!r} on {device}: {exc}") from exc
    return model.eval()  # already on ``device``: nothing is moved after loading


def context_length(model: Any) -> int | None:
    """The model's maximum sequence length, if its config says."""
    config = model.config
    config = getattr(config, "text_config", None) or config
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "seq_length", None)
    return int(value) if value else None
