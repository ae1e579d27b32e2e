"""JSON on the hot path, through orjson: upstream bodies out, upstream answers in, answers out.

orjson is several times faster than the standard library here and always writes UTF-8
(what ``ensure_ascii=False`` did). Its ``JSONDecodeError`` subclasses the standard one,
so callers keep catching ``json.JSONDecodeError``. Measured effect: docs/performance.md.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

loads = orjson.loads


def dumps(obj: Any) -> str:
    """Compact JSON text (aiohttp's ``json_serialize`` wants ``str``)."""
    return orjson.dumps(obj).decode()


class FastJSONResponse(JSONResponse):
    """A ``JSONResponse`` rendered by orjson (FastAPI's ORJSONResponse is deprecated)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
