"""The pagelens query API: `create_app()` wires the core package to HTTP (gunicorn: 'query_api:create_app()')."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from pagelens.settings import Settings
    from query_api.readiness import Warmup


@dataclass
class ApiState:
    """What every request reads: the one settings object and this worker's warm-up state."""

    settings: Settings
    warmup: Warmup


def create_app(settings: Settings | None = None) -> Flask:
    """A configured app; models load in the background (per worker: the factory runs after gunicorn forks).

    The imports live here so that importing the package (gunicorn reads `query_api.gunicorn_conf` in its
    master) creates no metrics and loads nothing before the workers fork.
    """
    from pagelens.settings import get_settings
    from pagelens.tracing import configure_tracing
    from query_api import api, chat, ops, ui
    from query_api.errors import register_error_handlers
    from query_api.metrics import install_request_metrics
    from query_api.readiness import Warmup
    from query_api.tracing import install_request_tracing

    settings = settings or get_settings()
    configure_tracing(settings)  # PAGELENS_OTEL_EXPORTER: request and stage spans; "none" costs nothing
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.api_max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state = ApiState(settings=settings, warmup=Warmup(settings))
    app.extensions["pagelens"] = state
    register_error_handlers(app)
    install_request_metrics(app)
    install_request_tracing(app)
    for blueprint in (api.bp, chat.bp, ops.bp, ui.bp):
        app.register_blueprint(blueprint)
    if settings.api_warm_on_start:
        state.warmup.start()
    return app
