"""Inside Airflow, S3, Graph and GCS clients come from its connections (and so from its secrets backend)."""

from __future__ import annotations

from typing import Any

from pagelens.settings import Settings
from pagelens.sources import clients


def s3_from_connection(settings: Settings) -> Any:
    """boto3 S3 client of the connection `aws_conn_id` (the Amazon provider falls back to boto3's chain
    when the connection is not defined)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=settings.aws_conn_id).get_conn()


def graph_from_connection(settings: Settings) -> Any:
    from pagelens.airflow.hooks.sharepoint import SharePointHook

    return SharePointHook(settings.sharepoint_conn_id).get_conn()


def gcs_from_connection(settings: Settings) -> Any:
    """`google.cloud.storage.Client` of the connection `gcp_conn_id`, through the Google provider's `GCSHook`."""
    try:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook
    except ImportError as exc:
        raise RuntimeError("gs:// sources inside Airflow read through the Google provider: pip install "
                           "apache-airflow-providers-google in the Airflow image (its workers need it, not the "
                           "encoder pods)") from exc
    return GCSHook(gcp_conn_id=settings.gcp_conn_id).get_conn()


def install() -> None:
    """From now on this process builds its S3, Graph and GCS clients from Airflow connections."""
    clients.install("s3", s3_from_connection)
    clients.install("graph", graph_from_connection)
    clients.install("gcs", gcs_from_connection)
