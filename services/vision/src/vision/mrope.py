"""Multimodal-RoPE positions for GLM-4V-family models driven by a generic decode loop.

GLM-4V places image tokens on a (temporal, height, width) grid of rotary positions, so
after an image the text positions no longer equal the token count: each row carries an
offset (``rope_delta``). ``generate()`` handles that through model-specific hooks; the
shared decode loop (``modelserver.decoding``) is model-agnostic and just calls the model.
:class:`MropeModel` wraps the model for it: at prefill it marks the image tokens
(``mm_token_type_ids``, computed from ``input_ids`` so any padding layout is right),
computes the 3-D positions and remembers each row's offset; at every decode step it
turns the loop's plain text positions into the shifted 3-D ones.
"""

from __future__ import annotations

from typing import Any

import torch


class MropeModel:
    """Callable stand-in for a GLM-4V model that supplies M-RoPE ``position_ids``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.image_token_id: int = model.config.image_token_id
        self._deltas: torch.Tensor | None = None

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
        if attention_mask is None:
            attention_mask = torch.ones(
                input_ids.shape[0],
                _past_length(past_key_values) + input_ids.shape[1],
                dtype=torch.long,
                device=input_ids.device,
            )
        # Text positions count real (unpadded) tokens, so left padding is ignored.
        text_positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        if _past_length(past_key_values) == 0:
            positions = self._prefill_positions(input_ids, attention_mask, text_positions, kwargs)
        else:
            positions = self._decode_positions(text_positions)
        return self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=positions,
            **kwargs,
        )

    def select_rows(self, keep: torch.Tensor | list[int]) -> None:
        """The decode loop dropped rows from its batch (and KV cache): keep their offsets aligned."""
        if self._deltas is not None:
            index = torch.as_tensor(keep, dtype=torch.long, device=self._deltas.device)
            self._deltas = self._deltas.index_select(0, index)

    def _prefill_positions(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        text_positions: torch.Tensor,
        kwargs: dict[str, Any],
    ) -> torch.Tensor:
        grid = kwargs.get("image_grid_thw")
        mm_types = (input_ids == self.image_token_id).to(torch.int32)
        if grid is None or not bool(mm_types.any()):
            kwargs.pop("mm_token_type_ids", None)
            self._deltas = torch.zeros(input_ids.shape[0], 1, dtype=torch.long, device=input_ids.device)
            return text_positions.unsqueeze(0).expand(3, -1, -1)
        kwargs["mm_token_type_ids"] = mm_types
        positions, deltas = self.model.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_types, image_grid_thw=grid, attention_mask=attention_mask
        )
        self._deltas = deltas.to(input_ids.device)
        return positions

    def _decode_positions(self, text_positions: torch.Tensor) -> torch.Tensor:
        if self._deltas is None or self._deltas.shape[0] != text_positions.shape[0]:
            raise RuntimeError(
                "M-RoPE offsets do not match the decode batch: the decode loop changed the batch "
                "without calling select_rows()"
            )
        return (text_positions + self._deltas).unsqueeze(0).expand(3, -1, -1)


def _past_length(past_key_values: Any) -> int:
    if past_key_values is None:
        return 0
    return int(past_key_values.get_seq_length())
