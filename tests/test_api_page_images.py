"""Page images show exactly what was indexed, for every source: the content store's bytes, personal data blacked
out, faces blurred, hostile page sizes refused with a 4xx, odd names linked correctly (issue 11)."""

from __future__ import annotations

import io
import os
import resource
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from pagelens.contentstore import content_store
from pagelens.pipeline.stages import ingest
from pagelens.records import DocumentReport
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.sources.local import file_sha256
from query_api import create_app
from tests.test_source_s3 import bucket, s3, s3_endpoint  # noqa: F401 (fixtures: moto S3 and a bucket)
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration
PII_LINE = "Call +49 30 901820 or mail jane.doe@example.com today"
PII_TEXT = f"Customer record. {PII_LINE}. SSN 123 45 6789 on file. Revenue grew nine percent"
OTHER_TEXT = "Unrelated memo. Staff parking moves to level two"


def png_of(response) -> np.ndarray:
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"), dtype=np.int16)


def word_boxes(pdf: Path, *words: str) -> list[tuple[float, float, float, float]]:
    import pdfplumber

    with pdfplumber.open(pdf) as document:
        found = {w["text"]: (w["x0"], w["top"], w["x1"], w["bottom"]) for w in document.pages[0].extract_words()}
    return [found[w] for w in words]


def region(image: np.ndarray, box: tuple[float, float, float, float], dpi: int) -> np.ndarray:
    s = dpi / 72
    return image[round(box[1] * s) + 1:round(box[3] * s) - 1, round(box[0] * s) + 1:round(box[2] * s) - 1]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """One namespace from a local folder: a document with personal data, one to be swapped, odd names."""
    root = tmp_path_factory.mktemp("pages")
    source = root / "docs"
    source.mkdir()
    (source / "pii.pdf").write_bytes(tiny_pdf(PII_TEXT))
    (source / "swap.pdf").write_bytes(tiny_pdf("Original contract. The fee is four hundred euros"))
    (source / "gone.pdf").write_bytes(tiny_pdf("Short lived. This one loses its kept copy"))
    (source / "line\nbreak\x1b[31m.pdf").write_bytes(tiny_pdf("Odd name. Newlines and escapes in a file name"))
    (source / "jane.doe@example.com 415-555-0134.pdf").write_bytes(tiny_pdf("Expense claim. Taxi fare to the airport"))
    (root / "other.pdf").write_bytes(tiny_pdf(OTHER_TEXT))
    settings = Settings(data_dir=root / "data", api_auth=False, api_warm_on_start=False)
    reports = ingest(str(source), "ns", settings)
    assert {r.status for r in reports} == {"indexed"}, [r.to_dict() for r in reports]
    return settings, source


@pytest.fixture(scope="module")
def client(indexed: tuple[Settings, Path]) -> FlaskClient:
    return create_app(indexed[0]).test_client()


def page_url(doc: str, page: int = 1, **query: str) -> str:
    args = "&".join(f"{k}={v}" for k, v in {"namespace": "ns", **query}.items())
    return f"/v1/documents/{quote(doc)}/pages/{page}.png?{args}"


def test_a_file_replaced_after_ingest_still_shows_the_indexed_pages_never_the_new_file(indexed, client) -> None:
    settings, source = indexed
    before = png_of(client.get(page_url("swap.pdf")))
    (source / "swap.pdf").unlink()
    os.symlink(source.parent / "other.pdf", source / "swap.pdf")  # another document, with other personal data
    after = png_of(client.get(page_url("swap.pdf")))
    assert np.array_equal(before, after)
    other = png_of(create_app(settings).test_client().get(page_url("pii.pdf")))
    assert not np.array_equal(after[:200], other[:200])


def test_a_document_whose_kept_content_is_gone_answers_410_without_paths(indexed, client) -> None:
    settings, source = indexed
    (source / "gone.pdf").write_bytes(tiny_pdf(OTHER_TEXT))  # the source file changed too: nothing holds those bytes
    record = Registry(settings.registry_url).get("ns", "gone.pdf")
    assert record is not None
    kept = content_store(settings).get(record.content_sha256)
    assert kept is not None
    kept.unlink()
    response = client.get(page_url("gone.pdf"))
    assert response.status_code == 410
    error = response.get_json()["error"]
    assert error["code"] == "document_content_gone" and "re-run `pagelens ingest`" in error["message"]
    assert str(settings.data_dir.parent) not in error["message"] and "/" not in error["message"].split("'")[0]


def test_unknown_documents_404_without_server_paths(indexed, client) -> None:
    settings, _ = indexed
    response = client.get(page_url("nope.pdf"))
    assert response.status_code == 404 and str(settings.data_dir.parent) not in response.get_data(as_text=True)


def test_redacted_words_are_blacked_out_in_served_pages(indexed, client) -> None:
    settings, source = indexed
    dpi = settings.api_page_dpi
    image = png_of(client.get(page_url("pii.pdf")))
    unredacted = Settings(**{**settings.model_dump(), "redact_pii": False})
    shown = png_of(create_app(unredacted).test_client().get(page_url("pii.pdf")))
    pii = word_boxes(source / "pii.pdf", "+49", "901820", "jane.doe@example.com", "123", "6789")
    for box in pii:
        ink = region(shown, box, dpi).sum(axis=2) < 3 * 200  # the glyphs as the unredacted page shows them
        assert ink.sum() > 20 and (region(image, box, dpi)[ink] == 0).all(), box  # every one of them black
    [plain] = word_boxes(source / "pii.pdf", "Revenue")
    assert np.array_equal(region(image, plain, dpi), region(shown, plain, dpi))  # the rest untouched


def test_faces_are_blurred_in_served_pages(indexed, client, monkeypatch) -> None:
    """No photo of a face ships offline: the detector reports one where the page has text, and the served
    page must be blurred exactly there, as embeddings are."""
    settings, source = indexed
    [box] = word_boxes(source / "pii.pdf", "Revenue")
    s = settings.api_page_dpi / 72
    face = (round(box[0] * s), round(box[1] * s), round((box[2] - box[0]) * s), round((box[3] - box[1]) * s))
    sharp = png_of(client.get(page_url("pii.pdf")))
    monkeypatch.setattr("pagelens.redact._face_boxes", lambda gray, detector: [face])
    blurred = png_of(client.get(page_url("pii.pdf")))
    x, y, w, h = face
    assert blurred[y:y + h, x:x + w].std() < sharp[y:y + h, x:x + w].std() / 2
    assert np.array_equal(blurred[y + 2 * h:], sharp[y + 2 * h:])


def test_a_photographed_face_is_blurred_in_the_served_scan(tmp_path: Path) -> None:
    """No stand-in detector: a real portrait, ingested as a scan, is served with the face blurred."""
    from tests.test_redact import portrait, sharpness

    folder = tmp_path / "photos"
    folder.mkdir()
    portrait().convert("RGB").save(folder / "badge-photo.png", dpi=(72, 72))
    settings = Settings(data_dir=tmp_path / "data", api_auth=False, api_warm_on_start=False, api_page_dpi=72)
    [report] = ingest(str(folder), "ns", settings)
    assert report.status == "indexed", report.to_dict()
    served = png_of(create_app(settings).test_client().get(page_url("badge-photo.png")))
    original = np.asarray(portrait().convert("RGB"), dtype=np.int16)
    assert served.shape == original.shape
    face = (slice(100, 331), slice(149, 380))  # where OpenCV's cascade finds it in the photo
    assert sharpness(served[face]) < sharpness(original[face]) / 4
    assert np.abs(served[360:] - original[360:]).max() <= 2  # the rest as it was (PNG of the decoded JPEG)


def test_personal_data_reaches_neither_answers_nor_document_names(client) -> None:
    answer = client.post("/v1/query", json={"question": "Which number should the customer call?", "namespace": "ns",
                                            "k": 3}).get_json()["answer"]
    assert "901820" not in answer["text"] and "jane.doe" not in answer["text"]
    found = client.post("/v1/search", json={"question": "taxi fare to the airport", "namespace": "ns", "k": 1})
    [top] = found.get_json()["results"]
    assert top["doc"].startswith("[EMAIL] [PHONE]~") and top["doc"].endswith(".pdf")
    assert "jane" not in top["image_url"] and "0134" not in top["image_url"]
    png_of(client.get(top["image_url"]))


def test_citation_links_of_names_with_newlines_and_escapes_work(indexed, client) -> None:
    response = client.post("/v1/search", json={"question": "newlines and escapes in a file name", "namespace": "ns",
                                               "k": 1})
    assert response.status_code == 200, response.get_json()
    [top] = response.get_json()["results"]
    assert top["doc"] == "line\nbreak\x1b[31m.pdf"
    assert "\n" not in top["image_url"] and "\x1b" not in top["image_url"]
    png_of(client.get(top["image_url"]))


def test_pages_of_documents_from_s3_are_served(s3, bucket, tmp_path: Path) -> None:  # noqa: F811
    settings = Settings(data_dir=tmp_path / "data", api_auth=False, api_warm_on_start=False,
                        content_store=f"s3://{bucket}/kept")
    s3.put_object(Bucket=bucket, Key="docs/finance/pii.pdf", Body=tiny_pdf(PII_TEXT))
    [report] = ingest(f"s3://{bucket}/docs", "ns", settings)
    assert report.status == "indexed"
    kept = s3.list_objects_v2(Bucket=bucket, Prefix="kept/")["Contents"]
    assert {o["Key"].rsplit("/", 1)[1] for o in kept} == {report.content_sha256, f"{report.content_sha256}.pii-v1.json"}
    s3.delete_object(Bucket=bucket, Key="docs/finance/pii.pdf")  # the source may change: the kept copy serves
    image = png_of(create_app(settings).test_client().get(page_url("finance/pii.pdf")))
    assert (image == 0).sum() > 500  # personal data blacked out there too


def _index_poster(settings, tmp_path: Path, doc: str) -> None:
    """A 1.5 kB PDF with one 200 x 200 inch page, recorded as indexed (as before the render cap existed)."""
    from reportlab.pdfgen import canvas

    path = tmp_path / "poster.pdf"
    pdf = canvas.Canvas(str(path), pagesize=(14400, 14400))
    pdf.drawString(72, 72, "A very large page")
    pdf.save()
    sha = file_sha256(path)
    content_store(settings).put(sha, path)
    content_store(settings).put_json(sha, "pii-v1", {"1": []})
    Registry(settings.registry_url).record("ns", DocumentReport(doc=doc, status="indexed", pages=1,
                                                                source_uri=path.as_uri(), content_sha256=sha), "v")


def test_a_page_too_big_to_render_is_422_fast_and_small(indexed, client, tmp_path: Path) -> None:
    """A 1.5 kB PDF with a 200 x 200 inch page, indexed before the cap existed: refused before rendering."""
    _index_poster(indexed[0], tmp_path, "poster.pdf")
    peak_before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    response = client.get(page_url("poster.pdf"))
    seconds, grown_mb = time.perf_counter() - started, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "page_too_large" and "PAGELENS_MAX_RENDER_PIXELS" in error["message"]
    assert seconds < 2 and grown_mb < 100, (seconds, grown_mb)


def test_a_scan_too_big_to_decode_within_the_cap_is_422_not_500(indexed, client, tmp_path: Path) -> None:
    """A 13,500 x 13,500 px PNG indexed before the cap existed: refused from its header, nothing decoded."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(13_500, 13_500))
    settings, _ = indexed
    sha = file_sha256(path)
    content_store(settings).put(sha, path)
    content_store(settings).put_json(sha, "pii-v1", {"1": []})
    Registry(settings.registry_url).record("ns", DocumentReport(doc="huge.png", status="indexed", pages=1,
                                                                source_uri=path.as_uri(), content_sha256=sha), "v")
    response = client.get(page_url("huge.png"))
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "page_too_large"
    assert "182,250,000 px" in response.get_json()["error"]["message"]


def test_oversized_pages_and_scans_are_quarantined_at_ingest_with_the_setting_in_the_reason(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    folder = tmp_path / "hostile"
    folder.mkdir()
    pdf = canvas.Canvas(str(folder / "poster.pdf"), pagesize=(14400, 14400))
    pdf.drawString(72, 72, "A very large page")
    pdf.save()
    (folder / "big.png").write_bytes(blank_png(13_500, 13_500))
    (folder / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    settings = Settings(data_dir=tmp_path / "data")
    reports = {r.doc: r for r in ingest(str(folder), "ns", settings)}
    assert {d: r.status for d, r in reports.items()} == dict.fromkeys(("poster.pdf", "big.png", "bomb.png"),
                                                                       "quarantined")
    assert reports["poster.pdf"].reason.startswith("page-too-large: page 1 is 200 x 200 in")
    assert "13500 x 13500" in reports["big.png"].reason and "150,000,000 px" in reports["big.png"].reason
    assert "150,000,000 px (PAGELENS_MAX_IMAGE_PIXELS)" in reports["bomb.png"].reason
    assert "300000000" not in reports["bomb.png"].reason


def blank_png(width: int, height: int) -> bytes:
    """A white greyscale PNG written row by row (never held in memory whole)."""
    row, packer = b"\x00" + b"\xff" * width, zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return png_chunks(width, height, data)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds almost nothing: what a decompression bomb's header looks like."""
    return png_chunks(width, height, zlib.compress(b"\x00" * 64))


def png_chunks(width: int, height: int, idat: bytes) -> bytes:
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")



def test_renders_are_bounded_per_worker_and_a_request_that_cannot_get_a_slot_is_told_to_retry(indexed) -> None:
    from pagelens.rendercap import render_slot

    settings, _ = indexed
    client = create_app(Settings(**{**settings.model_dump(), "api_render_concurrency": 1,
                                    "api_render_wait_s": 0.2})).test_client()
    with render_slot(1, 1.0):  # another request of this worker is rendering
        busy = client.get(page_url("pii.pdf"))
    assert busy.status_code == 503 and busy.get_json()["error"]["code"] == "render_busy"
    assert busy.headers["Retry-After"] == "5"
    png_of(client.get(page_url("pii.pdf")))  # the slot is free again


def test_llm_page_images_keep_the_same_render_cap(indexed, tmp_path: Path) -> None:
    """The pages sent to a vision LLM go through the same cap: an oversized page is left out, fast, not rendered."""
    from pagelens.pageimage import hit_page_images
    from pagelens.records import Hit

    settings, _ = indexed
    _index_poster(settings, tmp_path, "llm-poster.pdf")
    page_png = hit_page_images(settings, "ns")
    hit = Hit(id="1", doc_id="llm-poster.pdf", page=1, kind="text", bbox=[72, 60, 200, 80], score=1.0, text="")
    peak_before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    assert page_png(hit) is None
    seconds, grown_mb = time.perf_counter() - started, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert seconds < 2 and grown_mb < 100, (seconds, grown_mb)
    small = Settings(**{**settings.model_dump(), "max_render_pixels": 10_000})  # the setting decides, for LLM pages too
    assert hit_page_images(small, "ns")(Hit(id="2", doc_id="pii.pdf", page=1, kind="text", bbox=[72, 60, 200, 80],
                                            score=1.0, text="")) is None
    assert hit_page_images(settings, "ns")(Hit(id="2", doc_id="pii.pdf", page=1, kind="text", bbox=[72, 60, 200, 80],
                                               score=1.0, text="")) is not None
