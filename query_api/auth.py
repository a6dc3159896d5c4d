"""Bearer-token access control: 401 without a live token, 403 for a namespace the token does not grant."""

from __future__ import annotations

from flask import g, request

from pagelens.settings import Settings
from pagelens.tokens import resolve_token
from query_api.errors import ApiError

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pagelens"'}


def require_token(settings: Settings) -> None:
    """Resolve the request's bearer token onto `g.grant` (None when auth is off: every namespace is readable)."""
    g.grant = None
    if not settings.api_auth:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (create one with `pagelens token "
                                            "create --namespace NS`)", CHALLENGE)
    grant = resolve_token(settings, token.strip())
    if grant is None:
        raise ApiError(401, "invalid_token", "the bearer token is unknown or revoked",
                       {"WWW-Authenticate": 'Bearer realm="pagelens", error="invalid_token"'})
    g.grant = grant


def authorize_namespace(namespace: str) -> None:
    """403 unless the token grants `namespace`; checked before anything reveals whether it exists."""
    if g.grant is not None and not g.grant.allows(namespace):
        raise ApiError(403, "forbidden", f"this token may not read namespace '{namespace}'")

