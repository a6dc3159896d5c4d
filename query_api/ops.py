"""Operational endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify

from query_api.metrics import metrics_response
from query_api.readiness import readiness

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing about Milvus or the models (that is /readyz)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    state = current_app.extensions["pagelens"]
    checks = readiness(state.settings, state.warmup)
    failed = [f"{name}: {check['detail']}" for name, check in checks.items() if not check["ok"]]
    if not failed:
        return jsonify(ready=True, checks=checks), 200
    return jsonify(ready=False, checks=checks, error={"code": "not_ready", "message": "; ".join(failed)}), 503


@bp.get("/metrics")
def metrics() -> Response:
    return metrics_response()


@bp.get("/openapi.json")
def openapi() -> Response:
    return current_app.response_class(OPENAPI_PATH.read_text(encoding="utf-8"), mimetype="application/json")

