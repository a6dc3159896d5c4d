"""Microsoft Graph for the SharePoint source: an app-only (client credentials) session with timeouts and bounded
retries. Built from settings outside Airflow (`clients.graph_client`), from a connection inside it (`SharePointHook`).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
                 max_retries: int = 4, max_wait_s: float = 60.0, tenant_id: str = "") -> None:
        import requests

        self.app, self.base_url, self.scope = app, base_url.rstrip("/"), scope
        self.tenant_id = tenant_id  # whose organisation-wide sharing links mean `org:<tenant id>`
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

    def get(self, path_or_url: str, params: dict[str, str] | None = None, stream: bool = False,
            extra_headers: dict[str, str] | None = None) -> requests.Response:
        """GET a Graph path (or an absolute next/delta link), following redirects; raises `GraphRequestError`."""
        import requests

        url = self.url(path_or_url)
        for attempt in range(self.max_retries + 1):
            headers = {**(extra_headers or {}), "Authorization": f"Bearer {self.access_token()}"}
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

    def get_json(self, path_or_url: str, params: dict[str, str] | None = None,
                 extra_headers: dict[str, str] | None = None) -> dict[str, Any]:
        return self.get(path_or_url, params, extra_headers=extra_headers).json()

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


def connect(client_id: str, client_secret: str, tenant_id: str, authority_host: str = "", graph_base_url: str = "",
            timeout: float = 60.0, max_retries: int = 4, where: str = "the settings") -> GraphClient:
    """A Graph client authenticated as the app registration (`where` names the configuration in errors)."""
    import msal

    if not (client_id and client_secret and tenant_id):
        raise SourceError(f"{where} need a client id, a client secret and a tenant id for Microsoft Graph")
    base_url, authority = (graph_base_url or DEFAULT_GRAPH_BASE_URL).rstrip("/"), authority_url(authority_host, tenant_id)
    try:
        # The authority is taken as configured: no instance discovery call to the public cloud.
        app = msal.ConfidentialClientApplication(client_id, client_credential=client_secret, authority=authority,
                                                 instance_discovery=False, timeout=timeout)
    except (ValueError, OSError) as exc:
        raise SourceError(f"cannot reach the Microsoft Entra authority {authority}: {exc}; check the tenant id and "
                          f"authority host in {where}") from exc
    return GraphClient(app, base_url, token_scope(base_url), timeout, max_retries, tenant_id=tenant_id)


def authority_url(authority_host: str, tenant_id: str) -> str:
    return f"{(authority_host or DEFAULT_AUTHORITY_HOST).rstrip('/')}/{tenant_id}"


def token_scope(graph_base_url: str) -> str:
    """App-only tokens are asked for the Graph origin's `.default` scope (national clouds have their own)."""
    origin = urlsplit(graph_base_url or DEFAULT_GRAPH_BASE_URL)
    return f"{origin.scheme}://{origin.netloc}/.default"
