"""Who may read a SharePoint item, from its Microsoft Graph permissions, as the principals chunks carry.

- a user: `user:<Entra object id>`; an Entra or Microsoft 365 group: `group:<object id>`;
- a SharePoint site group (Owners, Members, Visitors, custom ones): `sitegroup:<site id>:<group id>`, plus the
  principals `PAGELENS_SHAREPOINT_SITE_GROUP_MEMBERS` lists for it (Graph v1.0 cannot list a site group's
  members, so tokens reach such documents through that map or by carrying the sitegroup principal);
- an organisation-wide sharing link: `org:<tenant id>` (every member of the tenant; OIDC tokens carry it from
  `tid`); an anonymous link: `*` (everyone who may read the namespace);
- links for specific people: each of them (`grantedToIdentitiesV2`).

Only the roles read, write and owner grant reading; "limited access" and unknown roles grant nothing. A document
whose permissions name no one is readable by no token (only the operator's CLI sees it): failing closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EVERYONE = "*"
READ_ROLES = frozenset({"read", "write", "owner"})


def principals_of(permissions: Iterable[Mapping[str, Any]], site: str, tenant: str,
                  site_group_members: Mapping[str, list[str]] | None = None) -> list[str]:
    found: set[str] = set()
    for permission in permissions:
        if not READ_ROLES & {str(r).lower() for r in permission.get("roles", [])}:
            continue
        scope = str((permission.get("link") or {}).get("scope", "")).lower()
        if scope == "anonymous":
            found.add(EVERYONE)
        elif scope == "organization":
            found.add(f"org:{tenant}")
        identities = [permission.get("grantedToV2"), *permission.get("grantedToIdentitiesV2", [])]
        for identity in identities:
            found |= _identity_principals(identity or {}, site)
    for principal in sorted(found):
        found |= set((site_group_members or {}).get(principal, []))
    return sorted(found)


def _identity_principals(identity: Mapping[str, Any], site: str) -> set[str]:
    out = set()
    if (user := identity.get("user")) and user.get("id"):
        out.add(f"user:{user['id']}")
    if (group := identity.get("group")) and group.get("id"):
        out.add(f"group:{group['id']}")
    if (site_group := identity.get("siteGroup")) and site_group.get("id"):
        out.add(f"sitegroup:{site}:{site_group['id']}")
    return out
