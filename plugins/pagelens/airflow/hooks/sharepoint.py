"""SharePointHook: Microsoft Graph behind one Airflow connection (the client itself is `pagelens.sources.graph`)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from pagelens.sources import SourceError
from pagelens.sources.graph import DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_BASE_URL, GraphClient, connect


class SharePointHook(BaseHook):
    """
    Microsoft Graph (SharePoint / OneDrive drives) with app-only (client credentials) authentication.

    Connection: login = application (client) id, password = client secret; extra: ``tenant_id`` (required),
    ``authority_host`` (default the public cloud's login host), ``graph_base_url`` (default Graph v1.0; national
    clouds and tests change it). The token scope is ``<graph origin>/.default``.

    :param sharepoint_conn_id: the Airflow connection to use. Defaults to ``sharepoint_default``.
    :param timeout: seconds for each HTTP call (token requests included).
    :param max_retries: retries of a throttled (429) or unavailable (5xx) call.
    """

    conn_name_attr = "sharepoint_conn_id"
    default_conn_name = "sharepoint_default"
    conn_type = "sharepoint"
    hook_name = "Microsoft SharePoint (Graph)"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port", "host"],
            "relabeling": {"login": "Client ID", "password": "Client secret"},
            "placeholders": {"extra": '{"tenant_id": "<directory (tenant) id>", '
                                      f'"authority_host": "{DEFAULT_AUTHORITY_HOST}", '
                                      f'"graph_base_url": "{DEFAULT_GRAPH_BASE_URL}"}}'},
        }

    def __init__(self, sharepoint_conn_id: str = default_conn_name, timeout: float = 60.0, max_retries: int = 4,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sharepoint_conn_id, self.timeout, self.max_retries = sharepoint_conn_id, timeout, max_retries

    def connection_fields(self) -> dict[str, str]:
        """What the connection says: client id and secret, tenant, authority host and Graph base URL."""
        connection = self.get_connection(self.sharepoint_conn_id)
        extra = connection.extra_dejson
        tenant_id = str(extra.get("tenant_id", "")).strip()
        if not (connection.login and connection.password and tenant_id):
            raise SourceError(f"Airflow connection {self.sharepoint_conn_id!r} needs login (client id), password "
                              "(client secret) and extra tenant_id")
        return {"client_id": connection.login, "client_secret": connection.password, "tenant_id": tenant_id,
                "authority_host": str(extra.get("authority_host") or DEFAULT_AUTHORITY_HOST).rstrip("/"),
                "graph_base_url": str(extra.get("graph_base_url") or DEFAULT_GRAPH_BASE_URL).rstrip("/")}

    def get_conn(self) -> GraphClient:
        """A Graph client authenticated as the app registration of the connection."""
        fields = self.connection_fields()
        return connect(fields["client_id"], fields["client_secret"], fields["tenant_id"], fields["authority_host"],
                       fields["graph_base_url"], self.timeout, self.max_retries,
                       where=f"Airflow connection {self.sharepoint_conn_id!r}")

    @cached_property
    def conn(self) -> GraphClient:
        """The client, created once per hook (msal keeps its token cache on it)."""
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        """Get a token and read the tenant's root site: proves credentials, consent and reachability."""
        try:
            site = self.conn.get_json("sites/root", params={"$select": "id,webUrl"})
        except SourceError as exc:
            return False, str(exc)
        return True, f"Connection successfully tested: root site {site.get('webUrl', site.get('id', ''))}"
