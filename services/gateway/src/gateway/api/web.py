"""The try-it web page: ``/`` (index.html) and ``/static/*`` (app.js, style.css).

The page is plain HTML/CSS/JS shipped as package data (``gateway/static``), no build
step. It calls the public ``POST /v1/chat/completions`` like any client. The limits it
checks before uploading (the server checks them again) are written into the page as a
JSON script block when it is served, so the page needs no extra (key-guarded) request.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from gateway.answer.route_choice import MODEL_ROUTES
from gateway.api.deps import SettingsDep
from gateway.config import GatewaySettings

router = APIRouter()

# What the browser may upload: the formats gateway.images.normalise accepts, by MIME type.
ACCEPTED_MIME_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")


def _static_text(name: str) -> str:
    return resources.files("gateway").joinpath("static", name).read_text(encoding="utf-8")


CONFIG_SLOT = '<script id="flashsight-config" type="application/json">{}</script>'


# The page loads only its own script, style and API; images are previewed from data:/blob: URLs.
PAGE_SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
async def index(settings: SettingsDep) -> HTMLResponse:
    # Read per request (a few kB): an edited page shows on reload, no restart needed.
    config = json.dumps(page_config(settings), ensure_ascii=False).replace("</", "<\\/")
    page = _static_text("index.html").replace(CONFIG_SLOT, CONFIG_SLOT.replace("{}", config))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache", **PAGE_SECURITY_HEADERS})


def page_config(settings: GatewaySettings) -> dict[str, Any]:
    """The limits the page checks before uploading, and whether it must send an API key."""
    return {
        "max_image_bytes": settings.images.max_image_bytes,
        "max_images": settings.images.max_images_per_request,
        "accepted_types": list(ACCEPTED_MIME_TYPES),
        "models": list(MODEL_ROUTES),
        "auth_required": settings.auth.required,
    }


class _SecuredStaticFiles(StaticFiles):
    """The page's script and style, with the page's security headers (``nosniff`` above all)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_SECURITY_HEADERS)
        return response


def mount_web(app: FastAPI) -> None:
    """The page's routes and its static files."""
    app.include_router(router)
    app.mount("/static", _SecuredStaticFiles(packages=[("gateway", "static")]), name="static")
