"""Operational endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request

from pagelens.settings import Settings
from pagelens.tokens import TokenGrant, resolve_token
from query_api.metrics import metrics_response
from query_api.readiness import public_checks, readiness

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing about Milvus or the models (that is /readyz)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Probes need no token and learn pass/fail per check; a valid token (the namespaces it grants) or
    PAGELENS_API_READYZ_DETAIL=true shows the details."""
    state = current_app.extensions["pagelens"]
    settings = state.settings
    grant = _grant(settings)
    if settings.api_readyz_detail or not settings.api_auth:
        checks = readiness(settings, state.warmup)
    elif grant is not None:
        checks = readiness(settings, state.warmup, grant.allows)
    else:
        checks = public_checks(readiness(settings, state.warmup))
    failed = [f"{name}: {check['detail']}" for name, check in checks.items() if not check["ok"]]
    if not failed:
        return jsonify(ready=True, checks=checks), 200
    return jsonify(ready=False, checks=checks, error={"code": "not_ready", "message": "; ".join(failed)}), 503


def _grant(settings: Settings) -> TokenGrant | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return resolve_token(settings, token.strip()) if scheme.lower() == "bearer" and token.strip() else None


@bp.get("/metrics")
def metrics() -> Response:
    return metrics_response()


@bp.get("/openapi.json")
def openapi() -> Response:
    return current_app.response_class(OPENAPI_PATH.read_text(encoding="utf-8"), mimetype="application/json")

