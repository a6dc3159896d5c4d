"""The clients of remote stores (S3, Microsoft Graph, Google Cloud Storage), built in one place so the core never
imports Airflow.

Outside Airflow (the CLI, the query API, encoder pods) they come from the libraries' own configuration and the
settings: boto3's credential chain and endpoint (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, a pod's web identity),
the app registration in `PAGELENS_SHAREPOINT_*`, Google's Application Default Credentials (`PAGELENS_GCS_PROJECT`).
Inside Airflow tasks the adapter installs builders that read its connections instead
(`pagelens.airflow.clients.install`), so credentials stay in its secrets backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagelens.settings import Settings
    from pagelens.sources.graph import GraphClient

Builder = Callable[["Settings"], Any]
_builders: dict[str, Builder] = {}
KINDS = ("s3", "graph", "gcs")


def install(kind: str, builder: Builder) -> None:
    """Build `kind` clients with `builder` from now on in this process (the Airflow adapter's connections)."""
    if kind not in KINDS:
        raise ValueError(f"unknown client kind {kind!r}; use one of {', '.join(KINDS)}")
    _builders[kind] = builder


def uninstall(kind: str) -> None:
    _builders.pop(kind, None)


def installed(kind: str) -> bool:
    """Whether `kind` clients come from an installed builder (Airflow connections) rather than the defaults."""
    return kind in _builders


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for sources, manifests and the content store."""
    return _builders.get("s3", _plain_s3)(settings)


def graph_client(settings: Settings) -> GraphClient:
    """An authenticated Microsoft Graph session for SharePoint sources."""
    return _builders.get("graph", _plain_graph)(settings)


def gcs_client(settings: Settings) -> Any:
    """A `google.cloud.storage.Client` for GCS sources."""
    return _builders.get("gcs", _plain_gcs)(settings)


def _plain_gcs(settings: Settings) -> Any:
    """Application Default Credentials; with `STORAGE_EMULATOR_HOST` set the library talks to that emulator."""
    from google.cloud import storage

    return storage.Client(project=settings.gcs_project or None)


def _plain_s3(settings: Settings) -> Any:
    import boto3

    return boto3.client("s3")


def _plain_graph(settings: Settings) -> GraphClient:
    from pagelens.sources.graph import connect

    return connect(settings.sharepoint_client_id, settings.sharepoint_client_secret,
                   settings.sharepoint_tenant_id, settings.sharepoint_authority_host, settings.sharepoint_graph_url,
                   where="PAGELENS_SHAREPOINT_CLIENT_ID, PAGELENS_SHAREPOINT_CLIENT_SECRET and "
                         "PAGELENS_SHAREPOINT_TENANT_ID (outside Airflow)")
