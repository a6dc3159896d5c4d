"""Bearer-token access control: 401 without a live pagelens token or verified OIDC token, 403 for a namespace the
token does not grant; within a namespace, the token's principals decide which documents exist for the request."""

from __future__ import annotations

from flask import g, request

from pagelens.oidc import InvalidOidcToken, looks_like_jwt, verify_oidc_token
from pagelens.settings import Settings
from pagelens.tokens import resolve_token
from query_api.errors import ApiError

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pagelens"'}
INVALID = {"WWW-Authenticate": 'Bearer realm="pagelens", error="invalid_token"'}


def require_token(settings: Settings) -> None:
    """Resolve the request's bearer token onto `g.grant` (None when auth is off: every namespace is readable)."""
    g.grant = None
    if not settings.api_auth:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>' (create one with `pagelens token "
                                            "create --namespace NS`)", CHALLENGE)
    token = token.strip()
    if looks_like_jwt(token) and settings.oidc_issuer:
        try:
            g.grant = verify_oidc_token(settings, token)
        except InvalidOidcToken as exc:
            raise ApiError(401, "invalid_token", str(exc), INVALID) from exc
        return
    grant = resolve_token(settings, token)
    if grant is None:
        raise ApiError(401, "invalid_token", "the bearer token is unknown or revoked", INVALID)
    g.grant = grant


def authorize_namespace(namespace: str) -> None:
    """403 unless the token grants `namespace`; checked before anything reveals whether it exists."""
    if g.grant is not None and not g.grant.allows(namespace):
        raise ApiError(403, "forbidden", f"this token may not read namespace '{namespace}'")



def reader_principals() -> frozenset[str] | None:
    """Whose documents this request may see: the token's principals (documents open to the whole namespace
    come with every token); None when auth is off (a local demo: everything)."""
    return None if g.grant is None else g.grant.principals
