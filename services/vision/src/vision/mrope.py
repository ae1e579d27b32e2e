"""Multimodal-RoPE positions for GLM-4V-family models driven by a generic decode loop.

GLM-4V places image tokens on a (temporal, height, width) grid of rotary positions, so
after an image the text positions no longer equal the token count: each row carries an
offset (``rope_delta``, usually negative: an image of h × w tokens advances the positions
by max(h, w) only). ``generate()`` keeps those offsets on the model, one tensor per batch;
the shared decode loop (``modelserver.decoding``) keeps rows joining and leaving a running
batch, so the offset must live with each row instead.

:class:`MropeModel` wraps the model for the loop and holds no state between calls:

* **prefill** (no cache yet): it marks the image tokens (``mm_token_type_ids``, computed
  from ``input_ids`` so any padding layout is right), computes the 3-D positions, and
  returns each row's offset on the output as ``rope_deltas`` ``(rows, 1)``. The loop adds
  it to the row's next position once; from then on the row's own position already is the
  shifted one, and it travels with the row when rows leave, join or move between slots.
* **decode**: the loop's ``position_ids`` ``(rows, 1)`` are passed through; the text model
  uses the same value for the three rotary sections (what ``generate()`` computes too).
  Nothing here depends on the batch, so a decode step can run in a static KV cache and be
  captured in a CUDA graph (:mod:`modelserver.cuda_graphs`).
"""

from __future__ import annotations

from typing import Any

import torch


class MropeModel:
    """Callable stand-in for a GLM-4V model: 3-D positions at prefill, per-row offsets on the output."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.image_token_id: int = model.config.image_token_id

    def __getattr__(self, name: str) -> Any:
        # config, device, dtype, generation_config ...: the decode loop sees the real model.
        return getattr(self.model, name)

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if not _is_prefill(past_key_values):
            if position_ids is None:
                raise ValueError(
                    "a decode step needs position_ids: each row's text position plus its rope delta "
                    "(the prefill's output.rope_deltas)"
                )
            return self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                past_key_values=past_key_values,
                position_ids=position_ids,
                **kwargs,
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        positions, deltas = self._prefill_positions(input_ids, attention_mask, kwargs)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=positions,
            **kwargs,
        )
        out.rope_deltas = deltas
        return out

    def _prefill_positions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefill's ``(3, rows, length)`` positions and each row's offset ``(rows, 1)``."""
        grid = kwargs.get("image_grid_thw")
        mm_types = (input_ids == self.image_token_id).to(torch.int32)
        if grid is None or not bool(mm_types.any()):
            kwargs.pop("mm_token_type_ids", None)
            # Text positions count real (unpadded) tokens, so left padding is ignored.
            text = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            deltas = torch.zeros(input_ids.shape[0], 1, dtype=torch.long, device=input_ids.device)
            return text.unsqueeze(0).expand(3, -1, -1), deltas
        kwargs["mm_token_type_ids"] = mm_types
        positions, deltas = self.model.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_types, image_grid_thw=grid, attention_mask=attention_mask
        )
        return positions, deltas.to(device=input_ids.device, dtype=torch.long).reshape(-1, 1)


def _is_prefill(past_key_values: Any) -> bool:
    """No cache yet, or an empty transformers cache (the static cache's views are never empty)."""
    if past_key_values is None:
        return True
    from transformers.cache_utils import Cache

    return isinstance(past_key_values, Cache) and past_key_values.get_seq_length() == 0
