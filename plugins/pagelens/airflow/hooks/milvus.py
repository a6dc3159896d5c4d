"""MilvusHook: the vector store behind one Airflow connection, so its credentials live in Airflow's secrets backend.

DAG tasks build their settings with `task_settings()`: when the connection (`PAGELENS_MILVUS_CONN_ID`, default
`milvus_default`) is defined, its URI, token and database replace the `PAGELENS_MILVUS_*` values, and every
store the task opens goes through the client the hook made. Without the connection the settings stay as
they are (the embedded Milvus Lite file of a laptop or a test). The CLI and the query API keep the settings.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from pagelens.errors import StoreUnavailable
from pagelens.settings import Settings

if TYPE_CHECKING:
    from pymilvus import MilvusClient

log = logging.getLogger(__name__)
DEFAULT_PORT = 19530


class MilvusHook(BaseHook):
    """
    Milvus (a cluster, or `milvus-lite server`) through pymilvus's ``MilvusClient``.

    Connection: host (a hostname, or a whole ``http(s)://host:port`` URI), port (default 19530); login and
    password for a user, or the password alone as an API token; extra: ``uri`` (overrides host and port; a
    Milvus Lite file path works too), ``secure`` (https), ``token`` (instead of the password), ``db_name``
    (or the schema field) and ``timeout`` (seconds to connect).

    :param milvus_conn_id: the Airflow connection to use. Defaults to ``milvus_default``.
    """

    conn_name_attr = "milvus_conn_id"
    default_conn_name = "milvus_default"
    conn_type = "milvus"
    hook_name = "Milvus"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Database", "login": "User", "password": "Password or API token"},
            "placeholders": {"host": "milvus.milvus.svc or https://in01-….zillizcloud.com", "port": str(DEFAULT_PORT),
                             "extra": '{"secure": false, "timeout": 10}'},
        }

    def __init__(self, milvus_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.milvus_conn_id = milvus_conn_id

    def connection_fields(self) -> dict[str, Any]:
        """What the connection says: uri, token, db_name, timeout (None where it says nothing)."""
        connection = self.get_connection(self.milvus_conn_id)
        extra = connection.extra_dejson
        uri = str(extra.get("uri") or "").strip()
        if not uri:
            host = (connection.host or "").strip().rstrip("/")
            if not host:
                raise StoreUnavailable(f"Airflow connection {self.milvus_conn_id!r} needs a host (or extra uri)")
            if "://" in host:
                uri = host if connection.port is None or host.count(":") > 1 else f"{host}:{connection.port}"
            else:
                scheme = "https" if str(extra.get("secure", "")).lower() in ("1", "true", "yes") else "http"
                uri = f"{scheme}://{host}:{connection.port or DEFAULT_PORT}"
        token = str(extra.get("token") or "")
        if not token and connection.password:
            token = f"{connection.login}:{connection.password}" if connection.login else connection.password
        timeout = extra.get("timeout")
        return {"uri": uri, "token": token, "db_name": str(extra.get("db_name") or connection.schema or ""),
                "timeout": float(timeout) if timeout not in (None, "") else None}

    def store_settings(self, settings: Settings) -> Settings:
        """`settings` with the connection's store in place of the PAGELENS_MILVUS_* values."""
        fields = self.connection_fields()
        update = {"milvus_uri": fields["uri"], "milvus_token": fields["token"], "milvus_db_name": fields["db_name"]}
        if fields["timeout"] is not None:
            update["milvus_timeout_s"] = fields["timeout"]
        return settings.model_copy(update=update)

    def get_conn(self) -> MilvusClient:
        """The process's client for the connection's store (the same one `pagelens.store` uses)."""
        from pagelens.store import milvus_client

        return milvus_client(self.store_settings(Settings()))

    @cached_property
    def conn(self) -> MilvusClient:
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        """List the collections: proves the address, the credentials and the database."""
        from pymilvus.exceptions import MilvusException

        try:
            names = self.conn.list_collections()
        except (StoreUnavailable, MilvusException) as exc:
            return False, str(exc)
        return True, f"Connection successfully tested: {len(names)} collections"


def task_settings(settings: Settings | None = None) -> Settings:
    """The settings a DAG task runs with: the Milvus connection's store when it is defined, else as configured.
    The task's S3 and Graph clients come from Airflow connections from here on (`pagelens.airflow.clients`)."""
    from pagelens.airflow.clients import install

    install()
    settings = settings or Settings()
    try:
        return MilvusHook(settings.milvus_conn_id).store_settings(settings)
    except AirflowNotFoundException:
        log.info("No Airflow connection %r: Milvus from PAGELENS_MILVUS_URI (%s)", settings.milvus_conn_id,
                 settings.milvus_uri)
        return settings
