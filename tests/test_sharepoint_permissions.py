"""Graph permission resources -> the principals a SharePoint document's chunks carry."""

from __future__ import annotations

from pagelens.sources.permissions import EVERYONE, principals_of
from tests.graph_server import granted, org_link

SITE, TENANT = "contoso.sharepoint.com,1111,2222", "tenant-1"


def test_users_groups_site_groups_and_links_with_reading_roles() -> None:
    permissions = [
        granted("user", "u1"), granted("group", "g1", ("write",)), granted("siteGroup", "3", ("owner",)), org_link(),
        {"roles": ["read"], "link": {"scope": "users"}, "grantedToIdentitiesV2": [{"user": {"id": "u2"}}]},
        granted("user", "u3", ("sp.limited access",)),  # limited access grants no reading
    ]
    assert principals_of(permissions, SITE, TENANT) == [
        "group:g1", f"org:{TENANT}", f"sitegroup:{SITE}:3", "user:u1", "user:u2"]


def test_anonymous_links_open_the_document_to_the_namespace_and_no_permissions_to_nobody() -> None:
    assert principals_of([{"roles": ["read"], "link": {"scope": "anonymous"}}], SITE, TENANT) == [EVERYONE]
    assert principals_of([], SITE, TENANT) == []


def test_site_group_members_are_added_from_the_configured_map() -> None:
    members = {f"sitegroup:{SITE}:5": ["group:m365-members"]}
    assert principals_of([granted("siteGroup", "5")], SITE, TENANT, members) == [
        "group:m365-members", f"sitegroup:{SITE}:5"]
