"""The browser page at `/` and its assets under /static, served from query_api/static/."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory
from flask.sansio.blueprints import BlueprintSetupState

from query_api.errors import ApiError

STATIC_DIR = Path(__file__).with_name("static")
# The page holds a bearer token: only its own scripts run, and page images come back as blob: URLs.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'; form-action 'self'")
bp = Blueprint("ui", __name__)


@bp.get("/")
def index() -> Response:
    if not (STATIC_DIR / "index.html").is_file():
        raise ApiError(404, "not_found", "no browser page is installed; use the HTTP API (/openapi.json)")
    response = send_from_directory(STATIC_DIR, "index.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.record_once
def _register_assets(state: BlueprintSetupState) -> None:
    """The page's JS and CSS at /static/<file>, under Flask's usual "static" endpoint (the app has no other)."""
    state.app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=_asset)


def _asset(filename: str) -> Response:
    return send_from_directory(STATIC_DIR, filename)
