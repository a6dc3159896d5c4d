"""SharePointHook: Microsoft Graph behind one Airflow connection (app-only msal tokens, timeouts, bounded retries)."""

from __future__ import annotations

import email.utils
import hashlib
import logging
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from pagelens.sources import SourceError

if TYPE_CHECKING:
    import msal
    import requests

log = logging.getLogger(__name__)

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
RETRY_STATUSES = frozenset({429, 502, 503, 504})  # throttled or briefly unavailable: Graph asks to come back


class GraphRequestError(SourceError):
    """Microsoft Graph answered with an error (after the bounded retries where a retry was worth it)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class GraphClient:
    """An authenticated Graph session: each call gets a token (msal caches it until near expiry), a timeout,
    and retries on 429/5xx that honour `Retry-After`, each wait capped at `max_wait_s`."""

    def __init__(self, app: msal.ConfidentialClientApplication, base_url: str, scope: str, timeout: float = 60.0,
                 max_retries: int = 4, max_wait_s: float = 60.0) -> None:
        import requests

        self.app, self.base_url, self.scope = app, base_url.rstrip("/"), scope
        self.timeout, self.max_retries, self.max_wait_s = timeout, max_retries, max_wait_s
        self.session = requests.Session()

    def access_token(self) -> str:
        result = self.app.acquire_token_for_client(scopes=[self.scope])
        if "access_token" not in result:
            raise GraphRequestError(f"Microsoft Entra refused an app token ({result.get('error')}: "
                                    f"{result.get('error_description')}); check the connection's client id, secret "
                                    "and tenant_id", code=str(result.get("error", "")))
        return str(result["access_token"])

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else f"{self.base_url}/{path_or_url.lstrip('/')}"

    def get(self, path_or_url: str, params: dict[str, str] | None = None, stream: bool = False) -> requests.Response:
        """GET a Graph path (or an absolute next/delta link), following redirects; raises `GraphRequestError`."""
        import requests

        url = self.url(path_or_url)
        for attempt in range(self.max_retries + 1):
            headers = {"Authorization": f"Bearer {self.access_token()}"}
            try:
                response = self.session.get(url, params=params, headers=headers, stream=stream, timeout=self.timeout)
            except requests.RequestException as exc:
                raise GraphRequestError(f"Microsoft Graph is unreachable at {url}: {exc}") from exc
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                wait = self.retry_wait(response, attempt)
                log.warning("Graph answered %s for %s; retrying in %.1f s", response.status_code, url, wait)
                response.close()
                time.sleep(wait)
                continue
            if response.status_code >= 400:
                raise graph_error(response, url)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get_json(self, path_or_url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return self.get(path_or_url, params).json()

    def download(self, path_or_url: str, target: Path) -> str:
        """Stream a content URL (Graph answers 302 to a pre-authenticated download URL) into `target`; its SHA-256."""
        digest = hashlib.sha256()
        with self.get(path_or_url, stream=True) as response, target.open("wb") as handle:
            for block in response.iter_content(chunk_size=1 << 20):
                digest.update(block)
                handle.write(block)
        return digest.hexdigest()

    def retry_wait(self, response: requests.Response, attempt: int) -> float:
        """Seconds to wait: the server's `Retry-After` (seconds or an HTTP date), else exponential; capped."""
        header = response.headers.get("Retry-After", "")
        wait = float(2 ** attempt)
        if header.isdigit():
            wait = float(header)
        elif header:
            try:
                wait = email.utils.parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError):
                pass
        return min(max(wait, 0.0), self.max_wait_s)


def graph_error(response: requests.Response, url: str) -> GraphRequestError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    code, message = str(error.get("code", "")), str(error.get("message", "")) or response.reason
    hint = {401: "check the connection's client secret", 403: "grant the app registration Sites.Read.All or "
            "Files.Read.All (application permissions) with admin consent", 404: "check the site, drive and folder"}
    return GraphRequestError(f"Graph answered {response.status_code} {code} for {url}: {message}"
                             + (f"; {hint[response.status_code]}" if response.status_code in hint else ""),
                             status=response.status_code, code=code)


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
        """What the connection says: client id and secret, tenant, authority, Graph base URL and token scope."""
        connection = self.get_connection(self.sharepoint_conn_id)
        extra = connection.extra_dejson
        tenant_id = str(extra.get("tenant_id", "")).strip()
        if not (connection.login and connection.password and tenant_id):
            raise SourceError(f"Airflow connection {self.sharepoint_conn_id!r} needs login (client id), password "
                              "(client secret) and extra tenant_id")
        graph_base_url = str(extra.get("graph_base_url") or DEFAULT_GRAPH_BASE_URL).rstrip("/")
        origin = urlsplit(graph_base_url)
        return {
            "client_id": connection.login, "client_secret": connection.password, "tenant_id": tenant_id,
            "authority": f"{str(extra.get('authority_host') or DEFAULT_AUTHORITY_HOST).rstrip('/')}/{tenant_id}",
            "graph_base_url": graph_base_url, "scope": f"{origin.scheme}://{origin.netloc}/.default",
        }

    def get_conn(self) -> GraphClient:
        """A Graph client authenticated as the app registration of the connection."""
        import msal

        fields = self.connection_fields()
        try:
            # The authority is taken as configured: no instance discovery call to the public cloud.
            app = msal.ConfidentialClientApplication(fields["client_id"], client_credential=fields["client_secret"],
                                                     authority=fields["authority"], instance_discovery=False,
                                                     timeout=self.timeout)
        except (ValueError, OSError) as exc:
            raise SourceError(f"cannot reach the Microsoft Entra authority {fields['authority']}: {exc}; check the "
                              "connection's tenant_id and authority_host") from exc
        return GraphClient(app, fields["graph_base_url"], fields["scope"], self.timeout, self.max_retries)

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
