"""Bearer tokens of the query API: created once (shown once), stored as SHA-256, resolved to namespaces and the
principals they act for, revoked."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pagelens.registry import ApiToken, Registry
from pagelens.settings import Settings
from pagelens.store import validate_namespace

TOKEN_PREFIX = "pl_"
TOKEN_BYTES = 32  # 256 bits of randomness: the hash needs no salt or slow KDF
MAX_TOKEN_CHARS = 128  # longer strings cannot be ours; refused before hashing


PRINCIPAL = re.compile(r"(user|group|sitegroup|org):[^\s\"\\\x00-\x1f]{1,240}")  # matched whole


@dataclass(frozen=True)
class TokenGrant:
    """What a valid token (or a verified OIDC token) may read: namespaces, and within them the documents
    open to the namespace ("*") or to one of its principals."""

    namespaces: frozenset[str]
    label: str
    principals: frozenset[str] = frozenset()

    def allows(self, namespace: str) -> bool:
        return namespace in self.namespaces


def validate_principals(principals: Iterable[str]) -> list[str]:
    """Principals as documents carry them: `user:<id>`, `group:<id>`, `sitegroup:<site>:<id>`, `org:<tenant>`."""
    found = sorted(set(principals))
    for principal in found:
        if not isinstance(principal, str) or not PRINCIPAL.fullmatch(principal):
            raise ValueError(f"invalid principal {principal!r}: use user:<id>, group:<id>, sitegroup:<site>:<id> or "
                             "org:<tenant id> (Entra object ids, as SharePoint permissions name them)")
    return found


class UnknownToken(LookupError):
    """No live token matches (never issued, mistyped, or already revoked)."""


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(settings: Settings, namespaces: Iterable[str], label: str = "", principals: Iterable[str] = ()) -> str:
    """A new token for `namespaces` acting for `principals`; only its hash is stored, so the returned string is
    the one copy. Without principals it reads only documents open to the whole namespace."""
    names = sorted({validate_namespace(ns) for ns in namespaces})
    who = validate_principals(principals)
    if not names:
        raise ValueError("a token needs at least one namespace (--namespace NS)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with Session(Registry(settings.registry_url).engine) as session, session.begin():
        session.add(ApiToken(token_sha256=token_sha256(token), namespaces=json.dumps(names), label=label,
                             principals=json.dumps(who), created_at=dt.datetime.now(dt.UTC)))
    return token


def resolve_token(settings: Settings, token: str) -> TokenGrant | None:
    """The grant of a live token, or None (unknown, malformed or revoked: the caller answers 401 alike).

    The lookup is by the hash of the presented token, so response time says nothing about how much of a
    real token an attacker guessed; the final comparison is constant-time all the same.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    digest = token_sha256(token)
    with Session(Registry(settings.registry_url).engine) as session:
        row = session.scalars(select(ApiToken).filter_by(token_sha256=digest)).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_sha256, digest):
            return None
        return TokenGrant(namespaces=frozenset(json.loads(row.namespaces)), label=row.label,
                          principals=frozenset(json.loads(row.principals or "[]")))


def revoke_token(settings: Settings, token: str) -> None:
    """Revoke a token at once (its row stays, as a record); UnknownToken if no live token matches."""
    with Session(Registry(settings.registry_url).engine) as session, session.begin():
        row = session.scalars(select(ApiToken).filter_by(token_sha256=token_sha256(token))).first()
        if row is None or row.revoked_at is not None:
            raise UnknownToken("no live token matches; it may be mistyped or already revoked")
        row.revoked_at = dt.datetime.now(dt.UTC)
