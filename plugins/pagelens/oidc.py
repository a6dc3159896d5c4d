"""Signed OIDC bearer tokens (a company's single sign-on) verified against the configured issuer's JWKS and mapped
onto the principals documents carry, so users need no pagelens token.

`oid` (Entra ID's object id; `sub` elsewhere) becomes `user:<id>`, each of `groups` a `group:<id>`, `tid` the
`org:<tenant>` of organisation-wide sharing links. Entra ID leaves `groups` out past 200 groups (`_claim_names`):
such a user then reads only what is shared with them directly or with the organisation.
"""

from __future__ import annotations

import functools
import json
import urllib.request
from typing import Any

from pagelens.settings import Settings
from pagelens.tokens import TokenGrant


class InvalidOidcToken(ValueError):
    """The token is not a valid JWT of the configured issuer (signature, audience, expiry, claims)."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def verify_oidc_token(settings: Settings, token: str) -> TokenGrant:
    """The grant of a verified token, or InvalidOidcToken saying why (the API answers 401)."""
    import jwt

    if not settings.oidc_issuer or not settings.oidc_audience:
        raise InvalidOidcToken("OIDC tokens are not accepted here (PAGELENS_OIDC_ISSUER and PAGELENS_OIDC_AUDIENCE "
                               "are not set); use a pagelens token")
    try:
        key = _jwks_client(_jwks_url(settings), settings.oidc_timeout_s).get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=settings.oidc_algorithms, audience=settings.oidc_audience,
                            issuer=settings.oidc_issuer, leeway=settings.oidc_leeway_s,
                            options={"require": ["exp", "iss", "aud"]})
    except jwt.PyJWKClientError as exc:
        raise InvalidOidcToken(f"no signing key for the token at the issuer's JWKS ({exc})") from exc
    except jwt.PyJWTError as exc:
        raise InvalidOidcToken(f"the token does not verify ({exc})") from exc
    return grant_of(claims, settings)


def grant_of(claims: dict[str, Any], settings: Settings) -> TokenGrant:
    """Principals and namespaces from verified claims."""
    user = claims.get("oid") or claims.get("sub")
    if not isinstance(user, str) or not user:
        raise InvalidOidcToken("the token names no user (neither an 'oid' nor a 'sub' claim)")
    principals = {f"user:{user}"}
    groups = claims.get("groups", [])
    principals |= {f"group:{g}" for g in groups if isinstance(g, str) and g} if isinstance(groups, list) else set()
    if isinstance(claims.get("tid"), str) and claims["tid"]:
        principals.add(f"org:{claims['tid']}")
    namespaces = set(settings.oidc_namespaces)
    if settings.oidc_namespace_claim:
        granted = claims.get(settings.oidc_namespace_claim, [])
        namespaces |= {ns for ns in (granted if isinstance(granted, list) else [granted]) if isinstance(ns, str)}
    return TokenGrant(namespaces=frozenset(namespaces), label=f"oidc:{user}", principals=frozenset(principals))


def _jwks_url(settings: Settings) -> str:
    return settings.oidc_jwks_url or _discovered_jwks_url(settings.oidc_issuer, settings.oidc_timeout_s)


@functools.lru_cache(maxsize=4)
def _discovered_jwks_url(issuer: str, timeout: float) -> str:
    """`jwks_uri` of the issuer's discovery document (read once per process)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(json.load(response)["jwks_uri"])
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidOidcToken(f"cannot read the issuer's discovery document {url} ({exc}); set "
                               "PAGELENS_OIDC_JWKS_URL") from exc


@functools.lru_cache(maxsize=4)
def _jwks_client(url: str, timeout: float) -> Any:
    """One key cache per JWKS URL: keys are fetched again only for an unknown key id (rotation)."""
    import jwt

    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=timeout)
