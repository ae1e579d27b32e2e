"""Route choice: ``direct`` (vision answers) or ``cascade`` (vision captions, reasoner answers).

A keyword classifier over the latest user message decides, unless the caller forces a
route through the model id (``direct`` / ``cascade``), the body's ``route`` field or the
``X-FlashSight-Route`` header. A question with no image goes to the reasoner (cascade
without captions). The keyword lists live in a TOML file users can replace.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from gateway.errors import InvalidRequestError, ModelNotFoundError, RouteConflictError

Route = Literal["direct", "cascade"]
RouteReason = Literal["keyword", "forced", "default", "no_image", "reasoner_language", "tools"]
ROUTES: tuple[Route, ...] = ("direct", "cascade")

# Model ids the gateway serves → the route they force (None: keyword routing).
MODEL_ROUTES: dict[str, Route | None] = {
    "auto": None,
    "direct": "direct",
    "cascade": "cascade",
    "glm-4.6v-flash-web": None,  # the seed articles' model id: an alias of auto
}


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The chosen route, why, and the keyword that caused it (if one did)."""

    route: Route
    reason: RouteReason
    keyword: str | None = None
    final: bool = False
    """A tools request's route (gateway.answer.tools): no language gate moves it."""


class KeywordTable:
    """Chinese keywords (substrings) and English keywords (whole words, any case)."""

    def __init__(self, *, zh: Iterable[str], en: Iterable[str]) -> None:
        self.zh = tuple(k.strip() for k in zh if k.strip())
        self.en = tuple(k.strip().lower() for k in en if k.strip())
        # Longest first so "how can i fix" wins over a shorter keyword at the same place.
        words = sorted(self.en, key=len, reverse=True)
        alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in words)
        self._en_re = re.compile(rf"(?<![\w'])(?:{alternatives})(?![\w'])", re.IGNORECASE) if words else None

    @classmethod
    def load(cls, path: Path | None = None) -> KeywordTable:
        """The table from ``path``, or the packaged ``keywords.toml``."""
        if path is None:
            text = resources.files("gateway").joinpath("keywords.toml").read_text(encoding="utf-8")
            source = "gateway/keywords.toml"
        else:
            text, source = path.read_text(encoding="utf-8"), str(path)
        try:
            data = tomllib.loads(text)
            return cls(zh=data.get("zh", {}).get("keywords", []), en=data.get("en", {}).get("keywords", []))
        except (tomllib.TOMLDecodeError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"keyword file {source} is not valid: expected [zh] and [en] tables each with "
                f'keywords = ["..."] ({exc})'
            ) from exc

    def find(self, text: str) -> str | None:
        """The keyword that occurs earliest in ``text`` (as written in the table), or None."""
        hits: list[tuple[int, str]] = [(i, k) for k in self.zh if (i := text.find(k)) >= 0]
        if self._en_re is not None and (m := self._en_re.search(text)):
            hits.append((m.start(), " ".join(m.group(0).lower().split())))
        return min(hits)[1] if hits else None


def pick_route(text: str, *, forced: Route | None, has_images: bool, table: KeywordTable) -> RouteDecision:
    """Forced route first; no image → reasoner; a keyword → cascade; else direct."""
    if forced is not None:
        return RouteDecision(forced, "forced")
    if not has_images:
        return RouteDecision("cascade", "no_image")
    keyword = table.find(text)
    if keyword is not None:
        return RouteDecision("cascade", "keyword", keyword)
    return RouteDecision("direct", "default")


def forced_route(model: str, forces: Mapping[str, str | None]) -> Route | None:
    """The route the caller forces through ``model`` or ``forces`` (where → value), if any.

    Unknown model → 404 ``model_not_found``; an unknown route or two different ones → 400.
    """
    if model not in MODEL_ROUTES:
        known = ", ".join(MODEL_ROUTES)
        raise ModelNotFoundError(f"model {model!r} does not exist; available models: {known}", param="model")
    sources = {"model": MODEL_ROUTES[model], **forces}
    for name, value in sources.items():
        if value is not None and value not in ROUTES:
            raise InvalidRequestError(
                f"{name} {value!r} is not a route; use one of: {', '.join(ROUTES)}", param="route"
            )
    chosen: dict[str, Route] = {name: value for name, value in sources.items() if value is not None}  # type: ignore[misc]
    if len(set(chosen.values())) > 1:
        said = ", ".join(f"{name}={value}" for name, value in chosen.items())
        raise RouteConflictError(
            f"conflicting forced routes ({said}); force one route or agree", param="route"
        )
    return next(iter(chosen.values()), None)
