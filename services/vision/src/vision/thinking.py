"""Split a streamed GLM answer into reasoning and content, and strip its box markers.

GLM-4.6V writes its chain of thought between ``<think>`` and ``</think>`` and may wrap the
final answer in ``<|begin_of_box|>…<|end_of_box|>``. FlashSight reports the thought as
``reasoning_content`` (never in ``content``), and removes the box markers while keeping
the text inside them, so callers get a plain answer: ``<|begin_of_box|>42<|end_of_box|>``
→ ``42``.

Other control tokens the model may print (e.g. ``<|image|>``) can be passed as ``drop``:
they are removed the same way. (The backend decodes with special tokens kept, because
some GLM tokenizers mark ``<think>`` itself as special, and ``skip_special_tokens`` would
then merge the thought into the answer.)

Text arrives in arbitrary pieces (a tag may be split over several decoded tokens, e.g.
``"<th"`` + ``"ink>"``), so the splitter holds back any tail that could still become a
tag and releases it once it cannot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
BOX_OPEN = "<|begin_of_box|>"
BOX_CLOSE = "<|end_of_box|>"

# tag → reasoning mode after it (None: markup removed without changing the mode).
_TAG_EFFECTS: dict[str, bool | None] = {
    THINK_OPEN: True,
    THINK_CLOSE: False,
    BOX_OPEN: None,
    BOX_CLOSE: None,
}


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of decoded text and where it goes: ``reasoning_content`` or ``content``."""

    text: str
    reasoning: bool


class ThinkingSplitter:
    """Incremental ``<think>`` splitter and box-marker remover for one answer."""

    def __init__(self, *, in_reasoning: bool = False, drop: Iterable[str] = ()) -> None:
        self._tags: dict[str, bool | None] = {**dict.fromkeys(drop), **_TAG_EFFECTS}
        # ``in_reasoning``: the prompt already opened a ``<think>`` block (some templates
        # pre-fill it), so the answer starts inside the thought.
        self._reasoning = in_reasoning
        self._pending = ""
        # Drop the line break GLM writes right after a think tag: it is layout, not text.
        self._strip_leading = True

    @property
    def in_reasoning(self) -> bool:
        return self._reasoning

    def feed(self, text: str) -> list[Segment]:
        """Take newly decoded ``text``; return what can be released now."""
        self._pending += text
        out: list[Segment] = []
        while True:
            position, tag = _find_first_tag(self._pending, self._tags)
            if tag is None:
                break
            self._release(self._pending[:position], out)
            self._pending = self._pending[position + len(tag) :]
            mode = self._tags[tag]
            if mode is not None and mode != self._reasoning:
                self._reasoning = mode
                self._strip_leading = True
        keep = _partial_tag_suffix(self._pending, self._tags)
        self._release(self._pending[: len(self._pending) - keep], out)
        self._pending = self._pending[len(self._pending) - keep :]
        return out

    def flush(self) -> list[Segment]:
        """The answer ended: release whatever was held back (an unfinished tag is text)."""
        out: list[Segment] = []
        self._release(self._pending, out)
        self._pending = ""
        return out

    def _release(self, text: str, out: list[Segment]) -> None:
        if self._strip_leading:
            text = text.lstrip()
            if not text:
                return
            self._strip_leading = False
        if not text:
            return
        if out and out[-1].reasoning == self._reasoning:
            out[-1] = Segment(out[-1].text + text, self._reasoning)
        else:
            out.append(Segment(text, self._reasoning))


def split_answer(text: str, *, in_reasoning: bool = False) -> tuple[str, str]:
    """Split a whole answer at once: ``(reasoning, content)``."""
    splitter = ThinkingSplitter(in_reasoning=in_reasoning)
    segments = splitter.feed(text) + splitter.flush()
    reasoning = "".join(s.text for s in segments if s.reasoning)
    content = "".join(s.text for s in segments if not s.reasoning)
    return reasoning, content


def prompt_opens_thinking(prompt: str) -> bool:
    """True when a rendered prompt ends inside an unclosed ``<think>`` block."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


def _find_first_tag(text: str, tags: Iterable[str]) -> tuple[int, str | None]:
    best, found = len(text), None
    for tag in tags:
        position = text.find(tag)
        if 0 <= position < best:
            best, found = position, tag
    return best, found


def _partial_tag_suffix(text: str, tags: Iterable[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of some tag."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:size]):
                longest = size
                break
    return longest
