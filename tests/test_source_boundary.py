"""Sources never leave their root: links out of a folder, files swapped for links, `..` names (issue 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pagelens.contentstore import content_store
from pagelens.pipeline.stages import index_batch, ingest
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.sources import SourceDocument, open_source
from pagelens.sources.local import file_sha256
from pagelens.store import VectorStore
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration
PUBLIC = "Public note. The canteen opens at nine."
SECRET = "Board minutes. The merger with Globex closes in March."


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(the source folder, a folder beside it holding another namespace's document)."""
    source, elsewhere = tmp_path / "source", tmp_path / "elsewhere"
    source.mkdir()
    elsewhere.mkdir()
    (source / "public.pdf").write_bytes(tiny_pdf(PUBLIC))
    (elsewhere / "secret.pdf").write_bytes(tiny_pdf(SECRET))
    return source, elsewhere


def texts(settings: Settings, namespace: str) -> str:
    store = VectorStore(settings, namespace)
    rows = store.client.query(store.target, filter=f'namespace == "{namespace}"', output_fields=["text"], limit=1000)
    return "\n".join(r["text"] for r in rows)


def statuses(settings: Settings, namespace: str) -> dict[str, tuple[str, str]]:
    return {r.doc_id: (r.status, r.reason) for r in Registry(settings.registry_url).documents(namespace)}


def test_links_out_of_the_folder_are_refused_and_reported_links_inside_are_followed(folders, settings) -> None:
    source, elsewhere = folders
    os.symlink(elsewhere / "secret.pdf", source / "looks-harmless.pdf")
    os.symlink("/etc/passwd", source / "passwd.pdf")
    (source / "sub").mkdir()
    os.symlink(source / "public.pdf", source / "sub" / "alias.pdf")  # inside the folder: fine
    reports = {r.doc: r for r in ingest(str(source), "ns", settings)}
    assert {d: r.status for d, r in reports.items()} == {"public.pdf": "indexed", "sub/alias.pdf": "indexed",
                                                          "looks-harmless.pdf": "quarantined",
                                                          "passwd.pdf": "quarantined"}
    for doc in ("looks-harmless.pdf", "passwd.pdf"):
        assert reports[doc].reason.startswith("outside-source:") and "not read" in reports[doc].reason
        assert str(elsewhere) not in reports[doc].reason  # the link's target is not revealed either
        assert statuses(settings, "ns")[doc][0] == "quarantined"
    assert "Globex" not in texts(settings, "ns") and "canteen" in texts(settings, "ns")
    assert content_store(settings).get(file_sha256(elsewhere / "secret.pdf")) is None  # never copied


def test_an_indexed_file_replaced_by_a_link_out_is_quarantined_and_its_vectors_dropped(folders, settings) -> None:
    source, elsewhere = folders
    assert [r.status for r in ingest(str(source), "ns", settings)] == ["indexed"]
    (source / "public.pdf").unlink()
    os.symlink(elsewhere / "secret.pdf", source / "public.pdf")
    [report] = ingest(str(source), "ns", settings)
    assert (report.doc, report.status) == ("public.pdf", "quarantined") and "outside-source" in report.reason
    assert texts(settings, "ns") == ""  # neither the old content nor the other document's


def test_a_file_swapped_for_a_link_after_listing_is_refused_at_fetch(folders, settings) -> None:
    source, elsewhere = folders
    [listed] = open_source(str(source), settings).list_documents().documents
    (source / "public.pdf").unlink()
    os.symlink(elsewhere / "secret.pdf", source / "public.pdf")  # between plan and batch (another task, later)
    [report] = index_batch([listed.to_dict()], "ns", settings)
    assert report.status == "quarantined" and report.reason.startswith("outside-source:")
    assert "Globex" not in texts(settings, "ns")


def test_a_tampered_batch_naming_a_file_outside_is_refused(folders, settings) -> None:
    """Batches cross XCom and pod manifests: a doc id or URI edited there is checked again at fetch."""
    source, elsewhere = folders
    outside = SourceDocument(doc_id="public.pdf", source_uri=(elsewhere / "secret.pdf").as_uri(),
                             location=str(source.resolve()), path=str(elsewhere / "secret.pdf"))
    dotted = SourceDocument(doc_id="../elsewhere/secret.pdf", source_uri=(source / "public.pdf").as_uri(),
                            location=str(source.resolve()))
    reports = index_batch([outside.to_dict(), dotted.to_dict()], "ns", settings)
    assert [r.status for r in reports] == ["quarantined", "quarantined"]
    assert all(r.reason.startswith("outside-source:") for r in reports)
    assert "Globex" not in texts(settings, "ns")


@pytest.mark.parametrize("name", ["../x.pdf", "a/../../x.pdf", "/etc/passwd", "a//b.pdf", "./a.pdf", ""])
def test_names_that_lead_out_are_refused(name: str) -> None:
    from pagelens.errors import OutsideSource
    from pagelens.sources import check_inside

    with pytest.raises(OutsideSource):
        check_inside(name)


def test_names_inside_pass() -> None:
    from pagelens.sources import check_inside

    assert check_inside("reports/2024/q1 ..final.pdf") == "reports/2024/q1 ..final.pdf"
