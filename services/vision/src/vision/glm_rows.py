"""The rows of a GLM batch as the shared decode loop sees them: model inputs in, split text out.

A request becomes a :class:`PreparedRow` (prompt ids, its images' patches and grids, its
sampling and grammar). The first rows of a batch are prefilled together
(:func:`batch_image_inputs` concatenates their images in row order); a row that joins a
running batch later brings its own images (:func:`joining_row`) and is prefilled alone.

:class:`SplittingSink` sits between the decode loop and the engine's sink: it maps the
loop's row numbers (rows that failed early have none) to the engine's batch positions, and
routes each row's ``<think>`` text to reasoning and strips box markers. A row's entry goes
as soon as it finishes or fails: a batch that keeps admitting never ends, so it must hold
its live rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from modelserver.backend import BatchSink, SamplingParams

from vision.thinking import ThinkingSplitter

if TYPE_CHECKING:
    from modelserver.decoding import JoiningRow, LogitsConstraint


@dataclass(slots=True)
class PreparedRow:
    """One request turned into model inputs."""

    position: int
    """Index of the request in the batch the engine handed over (joiners continue the count)."""
    input_ids: list[int]
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    starts_in_reasoning: bool
    params: SamplingParams
    constraint: LogitsConstraint | None = None


def batch_image_inputs(
    rows: Sequence[PreparedRow], *, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """Prefill inputs for the rows' images: patches and grids concatenated in row order.

    The model scatters image features into the image tokens in row-major order, and the
    M-RoPE index walks the grids in the same order, so no per-row bookkeeping is needed.
    """
    pixels = [row.pixel_values for row in rows if row.pixel_values is not None]
    grids = [row.image_grid_thw for row in rows if row.image_grid_thw is not None]
    if not pixels:
        return {}
    return {
        "pixel_values": torch.cat(pixels).to(device=device, dtype=dtype),
        "image_grid_thw": torch.cat(grids).to(device=device),
    }


def joining_row(row: PreparedRow, *, device: torch.device, dtype: torch.dtype) -> JoiningRow:
    """``row`` as a joiner of a running batch: prefilled on its own, with its own images."""
    from modelserver.decoding import JoiningRow

    extra = batch_image_inputs([row], device=device, dtype=dtype)
    return JoiningRow(row.input_ids, row.params, row.constraint, extra_inputs=extra or None)


class SplittingSink:
    """Per live row: routes ``<think>`` text to reasoning and strips box markers, before the real sink."""

    def __init__(self, sink: BatchSink, *, drop: frozenset[str] = frozenset()) -> None:
        self._sink = sink
        self._drop = drop
        self._rows: dict[int, tuple[int, ThinkingSplitter]] = {}
        self._next_row = 0

    @property
    def held(self) -> int:
        """How many decode rows are mapped (rows not yet finished or failed)."""
        return len(self._rows)

    def add(self, row: PreparedRow) -> None:
        """Map the next decode row (they are numbered in the order added) to ``row``."""
        splitter = ThinkingSplitter(in_reasoning=row.starts_in_reasoning, drop=self._drop)
        self._rows[self._next_row] = (row.position, splitter)
        self._next_row += 1

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        position, splitter = self._rows[index]
        for segment in splitter.feed(text):
            self._sink.emit(position, segment.text, reasoning=reasoning or segment.reasoning)

    def finish(self, index: int, **usage: Any) -> None:
        position, splitter = self._rows.pop(index)
        for segment in splitter.flush():
            self._sink.emit(position, segment.text, reasoning=segment.reasoning)
        self._sink.finish(position, **usage)

    def fail(self, index: int, error: Exception) -> None:
        position, _ = self._rows.pop(index)
        self._sink.fail(position, error)

    def is_cancelled(self, index: int) -> bool:
        return self._sink.is_cancelled(self._rows[index][0])
