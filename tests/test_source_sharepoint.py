"""SharePoint source and hook against a local Entra/Graph stand-in over TLS (tests/graph_server.py): full and
incremental delta listings, renames and deletions, expired delta links, throttling, downloads, whole ingest runs.
The production client runs unchanged; only the Airflow connection's base URLs point at 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagelens.airflow.hooks.sharepoint import SharePointHook
from pagelens.pipeline.stages import ingest, plan_ingest
from pagelens.records import DocumentReport
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.sources import DocumentVanished, Listing, SourceDocument, SourceError, open_source
from pagelens.sources.graph import authority_url, token_scope
from tests.graph_server import CLIENT_ID, CLIENT_SECRET, DRIVE, SITE, TENANT, GraphServer
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration

LOCATION = f"sharepoint://{SITE}/{DRIVE}/Shared Docs/Policies"


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphServer]:
    """The stand-in server with a small library; the default SharePoint connection points at it, and clients are
    built from Airflow connections as in DAG tasks."""
    from pagelens.airflow.clients import install
    from pagelens.sources import clients

    monkeypatch.setattr(clients, "_builders", {})
    install()
    with GraphServer(tmp_path / "tls") as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_file)  # trust the server's own CA, as for a TLS proxy
        monkeypatch.setenv("AIRFLOW_CONN_SHAREPOINT_DEFAULT", json.dumps(server.connection()))
        drive = server.drive
        drive.put("Shared Docs/Policies/travel.pdf", tiny_pdf("Travel policy. Book trains for short trips."))
        drive.put("Shared Docs/Policies/finance/expenses.pdf", tiny_pdf("Expense policy. Keep receipts."))
        drive.put("Shared Docs/Policies/finance/2025/q1.pdf", tiny_pdf("First quarter. Costs fell."))
        drive.put("Shared Docs/Other/notes.pdf", tiny_pdf("Meeting notes. Nothing decided."))
        yield server


def doc_ids(listing: Listing) -> set[str]:
    return {d.doc_id for d in listing.documents}


def record_indexed(settings: Settings, namespace: str, docs: list[SourceDocument]) -> None:
    """Registry rows as a finished run leaves them."""
    from pagelens.embed import model_version

    registry = Registry(settings.registry_url)
    for doc in docs:
        report = DocumentReport(doc=doc.doc_id, status="indexed", chunks=1, source_uri=doc.source_uri,
                                location=doc.location, etag=doc.etag, content_sha256="0" * 64)
        registry.record(namespace, report, model_version(settings))


# --- the hook ---

def test_hook_follows_the_airflow_hook_conventions(settings: Settings) -> None:
    assert SharePointHook.default_conn_name == "sharepoint_default" == settings.sharepoint_conn_id
    assert SharePointHook.conn_name_attr == "sharepoint_conn_id" and SharePointHook.conn_type == "sharepoint"
    assert SharePointHook().sharepoint_conn_id == "sharepoint_default"
    assert SharePointHook.get_ui_field_behaviour()["relabeling"] == {"login": "Client ID", "password": "Client secret"}


def test_hook_reads_the_connection_fields(graph: GraphServer) -> None:
    fields = SharePointHook().connection_fields()
    assert fields == {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "tenant_id": TENANT,
                      "authority_host": graph.base, "graph_base_url": graph.graph_base}
    assert authority_url(fields["authority_host"], TENANT) == f"{graph.base}/{TENANT}"
    assert token_scope(fields["graph_base_url"]) == f"{graph.base}/.default"


def test_hook_defaults_to_the_public_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SP_PROD", json.dumps({"conn_type": "sharepoint", "login": "app", "password": "pw",
                                                           "extra": {"tenant_id": "t-1"}}))
    fields = SharePointHook("sp_prod").connection_fields()
    assert authority_url(fields["authority_host"], "t-1") == "https://login.microsoftonline.com/t-1"
    assert fields["graph_base_url"] == "https://graph.microsoft.com/v1.0"
    assert token_scope(fields["graph_base_url"]) == "https://graph.microsoft.com/.default"


def test_hook_says_what_the_connection_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SP_BROKEN", json.dumps({"conn_type": "sharepoint", "login": "app", "password": "pw"}))
    with pytest.raises(SourceError, match="extra tenant_id"):
        SharePointHook("sp_broken").get_conn()


def test_test_connection_gets_a_token_and_reads_the_root_site(graph: GraphServer) -> None:
    ok, message = SharePointHook().test_connection()
    assert ok, message
    assert "contoso.sharepoint.com" in message and graph.tokens_issued == 1


def test_test_connection_reports_a_wrong_secret(graph: GraphServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SHAREPOINT_DEFAULT", json.dumps(graph.connection(secret="wrong")))
    ok, message = SharePointHook().test_connection()
    assert not ok and "invalid_client" in message and "secret" in message


# --- listing ---

def test_outside_airflow_the_app_registration_comes_from_the_settings(graph: GraphServer, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pagelens.sources import clients

    monkeypatch.setattr(clients, "_builders", {})  # the CLI or the API: no Airflow connections
    with pytest.raises(SourceError, match="PAGELENS_SHAREPOINT_CLIENT_ID"):
        open_source(LOCATION, Settings(data_dir=tmp_path)).list_documents()
    settings = Settings(data_dir=tmp_path, sharepoint_tenant_id=TENANT, sharepoint_client_id=CLIENT_ID,
                        sharepoint_client_secret=CLIENT_SECRET, sharepoint_authority_host=graph.base,
                        sharepoint_graph_url=graph.graph_base)
    assert "travel.pdf" in doc_ids(open_source(LOCATION, settings).list_documents())


def test_full_listing_pages_through_delta_with_one_token(graph: GraphServer, settings: Settings) -> None:
    listing = open_source(LOCATION, settings).list_documents()

    assert listing.complete and listing.location == LOCATION
    assert doc_ids(listing) == {"travel.pdf", "finance/expenses.pdf", "finance/2025/q1.pdf"}
    travel = next(d for d in listing.documents if d.doc_id == "travel.pdf")
    item_id = graph.drive.find("Shared Docs/Policies/travel.pdf").id
    assert travel.source_uri == f"sharepoint://{SITE}/{DRIVE}/items/{item_id}"
    assert travel.etag == f'"{{{item_id}}},1"' and travel.location == LOCATION
    assert json.loads(listing.cursor)["delta_link"].startswith(graph.graph_base + "/")
    assert graph.calls(r"/delta\?.*skip=") >= 1  # more than one page
    assert graph.tokens_issued == 1  # the token is cached across calls


def test_a_drive_root_location_lists_every_file(graph: GraphServer, settings: Settings) -> None:
    listing = open_source(f"sharepoint://{SITE}/{DRIVE}", settings).list_documents()
    assert doc_ids(listing) == {"Shared Docs/Policies/travel.pdf", "Shared Docs/Policies/finance/expenses.pdf",
                                "Shared Docs/Policies/finance/2025/q1.pdf", "Shared Docs/Other/notes.pdf"}


def test_incremental_listing_holds_only_changes_and_deletions(graph: GraphServer, settings: Settings) -> None:
    source = open_source(LOCATION, settings)
    first = source.list_documents()
    record_indexed(settings, "hr", first.documents)
    expenses = next(d for d in first.documents if d.doc_id == "finance/expenses.pdf")
    graph.drive.put("Shared Docs/Policies/travel.pdf", tiny_pdf("Travel policy. Planes only abroad."))
    graph.drive.put("Shared Docs/Policies/new/onboarding.pdf", tiny_pdf("Onboarding. Welcome aboard."))
    graph.drive.delete("Shared Docs/Policies/finance/expenses.pdf")
    graph.drive.put("Shared Docs/Other/notes.pdf", tiny_pdf("Meeting notes. Outside the folder."))

    second = source.list_documents(first.cursor)
    plan = plan_ingest([second], "hr", settings)

    assert not second.complete
    assert doc_ids(second) == {"travel.pdf", "new/onboarding.pdf"}
    assert second.deleted == [expenses.source_uri]  # Graph names no path for a deleted item
    assert sorted(d.doc_id for d in plan.to_index) == ["new/onboarding.pdf", "travel.pdf"]
    assert plan.gone == ["finance/expenses.pdf"] and plan.cursors == {LOCATION: second.cursor}
    third = source.list_documents(second.cursor)
    assert (third.documents, third.deleted, third.complete) == ([], [], False)


def test_a_renamed_file_retires_its_old_doc_id(graph: GraphServer, settings: Settings) -> None:
    source = open_source(LOCATION, settings)
    first = source.list_documents()
    record_indexed(settings, "hr", first.documents)
    graph.drive.rename("Shared Docs/Policies/travel.pdf", "travel-2026.pdf")

    second = source.list_documents(first.cursor)
    plan = plan_ingest([second], "hr", settings)

    assert [d.doc_id for d in plan.to_index] == ["travel-2026.pdf"] and plan.gone == ["travel.pdf"]


def test_a_renamed_or_deleted_folder_relists_in_full(graph: GraphServer, settings: Settings,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    source = open_source(LOCATION, settings)
    first = source.list_documents()
    record_indexed(settings, "hr", first.documents)
    graph.drive.rename("Shared Docs/Policies/finance", "money")  # Graph reports the folder, not the files in it

    with caplog.at_level(logging.WARNING, logger="pagelens.sources.sharepoint"):
        second = source.list_documents(first.cursor)
    plan = plan_ingest([second], "hr", settings)

    assert second.complete and "renamed, moved or deleted" in caplog.text
    assert doc_ids(second) == {"travel.pdf", "money/expenses.pdf", "money/2025/q1.pdf"}
    assert plan.gone == ["finance/2025/q1.pdf", "finance/expenses.pdf"]

    graph.drive.delete("Shared Docs/Policies/money")  # only the folder is reported deleted
    third = source.list_documents(second.cursor)
    assert third.complete and doc_ids(third) == {"travel.pdf"}


def test_an_expired_delta_link_restarts_a_full_listing(graph: GraphServer, settings: Settings,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    source = open_source(LOCATION, settings)
    first = source.list_documents()
    graph.drive.expired_before = graph.drive.seq + 1

    with caplog.at_level(logging.WARNING, logger="pagelens.sources.sharepoint"):
        second = source.list_documents(first.cursor)

    assert second.complete and doc_ids(second) == doc_ids(first)
    assert "delta link expired (resyncChangesApplyDifferences)" in caplog.text


def test_folders_missing_from_the_cursor_are_looked_up(graph: GraphServer, settings: Settings) -> None:
    source = open_source(LOCATION, settings)
    cursor = json.loads(source.list_documents().cursor)
    graph.drive.put("Shared Docs/Policies/finance/2025/q2.pdf", tiny_pdf("Second quarter. Costs rose."))

    listing = source.list_documents(json.dumps({"delta_link": cursor["delta_link"], "folders": {}}))

    assert doc_ids(listing) == {"finance/2025/q2.pdf"}
    assert graph.calls(r"/items/[^/?]+\?") >= 1  # the parent's path came from a plain item GET


def test_a_cursor_for_another_host_is_not_followed(graph: GraphServer, settings: Settings) -> None:
    cursor = json.dumps({"delta_link": "https://graph.example.net/v1.0/drives/x/root/delta?token=1", "folders": {}})
    listing = open_source(LOCATION, settings).list_documents(cursor)
    assert listing.complete and len(listing.documents) == 3


def test_throttled_calls_wait_for_retry_after(graph: GraphServer, settings: Settings) -> None:
    graph.throttle_next = 1
    start = time.perf_counter()
    listing = open_source(LOCATION, settings).list_documents()
    assert len(listing.documents) == 3 and graph.throttle_next == 0
    assert time.perf_counter() - start >= 1.0  # Retry-After: 1 was honoured


# --- content ---

def test_fetch_follows_the_redirect_without_sending_the_token(graph: GraphServer, settings: Settings,
                                                              tmp_path: Path) -> None:
    source = open_source(LOCATION, settings)
    doc = next(d for d in source.list_documents().documents if d.doc_id == "finance/2025/q1.pdf")

    fetched = source.fetch(doc, tmp_path)

    content = graph.drive.find("Shared Docs/Policies/finance/2025/q1.pdf").content
    assert Path(fetched.path).read_bytes() == content and Path(fetched.path).name == "q1.pdf"
    assert fetched.content_sha256 == hashlib.sha256(content).hexdigest()
    [download] = [headers for _, path, headers in graph.requests if path.startswith("/download/")]
    assert "Authorization" not in download  # the pre-authenticated URL lives on another host


def test_an_item_deleted_after_listing_is_reported_vanished(graph: GraphServer, settings: Settings,
                                                            tmp_path: Path) -> None:
    source = open_source(LOCATION, settings)
    doc = next(d for d in source.list_documents().documents if d.doc_id == "travel.pdf")
    graph.drive.delete("Shared Docs/Policies/travel.pdf")
    with pytest.raises(DocumentVanished, match=r"travel\.pdf"):
        source.fetch(doc, tmp_path)


def test_bad_locations_are_refused(settings: Settings) -> None:
    with pytest.raises(SourceError, match="needs a site and a drive"):
        open_source(f"sharepoint://{SITE}", settings)


# --- whole runs ---

def test_ingest_from_sharepoint_converges_on_the_library(graph: GraphServer, settings: Settings) -> None:
    from pagelens.store import VectorStore

    settings = settings.model_copy(update={"parse_workers": 1})
    drive = graph.drive
    drive.put("Shared Docs/Policies/finance/expenses.pdf",
              tiny_pdf("Expense policy. Keep receipts.", "Expense limits. Dinner is capped at forty euros."))
    first = {r.doc: r.status for r in ingest(LOCATION, "hr", settings)}
    store = VectorStore(settings, "hr")
    before = {doc: store.count(doc) for doc in first}
    assert set(first.values()) == {"indexed"} and len(first) == 3 and before["finance/expenses.pdf"] >= 2

    drive.put("Shared Docs/Policies/finance/expenses.pdf", tiny_pdf("Expense policy. Submit receipts monthly."))
    drive.delete("Shared Docs/Policies/finance/2025/q1.pdf")
    plans = []
    second = {r.doc: r.status for r in ingest(LOCATION, "hr", settings, on_plan=plans.append)}

    assert [d.doc_id for d in plans[0].to_index] == ["finance/expenses.pdf"]  # only the change is downloaded
    assert second == {"finance/expenses.pdf": "indexed", "finance/2025/q1.pdf": "deleted"}
    assert store.count("finance/2025/q1.pdf") == 0
    assert 0 < store.count("finance/expenses.pdf") < before["finance/expenses.pdf"]
    assert store.count("travel.pdf") == before["travel.pdf"]
    assert graph.calls("/content") == 4

    plans.clear()
    assert ingest(LOCATION, "hr", settings, on_plan=plans.append) == []
    assert plans[0].to_index == [] and plans[0].gone == []
