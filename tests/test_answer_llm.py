"""Generated answers against a real OpenAI-compatible server (llama.cpp on SmolLM2-135M): what goes over the wire,
citation checking of real output, and the extractive fallback on timeouts and endpoint errors."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from pagelens.answer import CITATION, SYSTEM_PROMPT, VISION_NOTE, answer, build_messages, label
from pagelens.pageimage import render_page_png
from pagelens.records import Hit
from pagelens.samples import PDF_NAME
from pagelens.settings import Settings
from tests.llm_server import MODEL_ALIAS, LlamaServer, RecordingProxy, smollm2_gguf

pytestmark = pytest.mark.integration  # a real llama.cpp server; MiniLM for the extractive fallback

QUESTION = "How many people work at the Eindhoven plant?"
HITS = [
    Hit(id="1", doc_id="r.pdf", page=1, kind="text", bbox=[56, 120, 540, 200], score=0.9,
        text="Acme Robotics opened a plant in Eindhoven in March 2025. The plant employs 74 people "
             "(hiring plans are on [Page 7])."),
    Hit(id="2", doc_id="r.pdf", page=2, kind="table", bbox=[56, 150, 540, 330], score=0.8,
        text="Revenue by region\nRegion | 2024 | 2025\nEurope | 19.0 | 21.4\nTotal | 41.7 | 48.2"),
    Hit(id="3", doc_id="r.pdf", page=3, kind="figure", bbox=[56, 100, 540, 420], score=0.7,
        text="Units shipped per quarter\nQ1 1,150 Q2 1,420 Q3 1,610 Q4 1,980"),
]
EVIDENCE_LABELS = {"[Page 1]", "[Page 2]", "[Figure 3]"}


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is not installed (pip install -r requirements-dev.txt)")
    with LlamaServer(smollm2_gguf(), tmp_path_factory.mktemp("llm") / "server.log") as server:
        yield server


@pytest.fixture
def proxy(llm_server: LlamaServer) -> Iterator[RecordingProxy]:
    with RecordingProxy(llm_server.url) as recording:
        yield recording


def llm_settings(tmp_path: Path, base_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"llm_model": MODEL_ALIAS, "llm_max_tokens": 48, "llm_timeout_s": 60.0, **overrides}
    return Settings(data_dir=tmp_path, llm_base_url=base_url, **values)


def test_the_request_carries_the_settings_the_rules_and_the_labelled_excerpts(tmp_path: Path, proxy: RecordingProxy) -> None:
    result = answer(QUESTION, HITS, llm_settings(tmp_path, proxy.url))
    assert result.mode == "generated" and result.text and not result.fallback_reason
    assert result.timings["generate_s"] > 0
    [exchange] = proxy.exchanges
    sent = exchange.request
    assert exchange.path == "/v1/chat/completions" and exchange.status == 200
    assert (sent["model"], sent["max_tokens"], sent["temperature"]) == (MODEL_ALIAS, 48, 0)
    system, user = sent["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    for rule in ("using only the labelled excerpts", "[Page 4] or [Figure 2]", "do not contain the answer"):
        assert rule in system["content"]
    assert user["role"] == "user" and user["content"].endswith(f"Question: {QUESTION}")
    for hit in HITS:
        assert f"{label(hit)} ({hit.doc_id}):\n{hit.text}" in user["content"]


def test_citations_in_real_model_output_are_checked_against_the_evidence(tmp_path: Path, proxy: RecordingProxy) -> None:
    copy_request = "Copy the excerpt about the plant word for word, with its label."  # SmolLM2 then emits labels
    result = answer(copy_request, HITS, llm_settings(tmp_path, proxy.url, llm_max_tokens=64))
    raw = proxy.exchanges[0].response["choices"][0]["message"]["content"]
    raw_labels = [m.group(0) for m in CITATION.finditer(raw)]
    assert result.mode == "generated" and raw_labels
    assert result.citations_removed == sum(lbl not in EVIDENCE_LABELS for lbl in raw_labels)
    assert {m.group(0) for m in CITATION.finditer(result.text)} <= EVIDENCE_LABELS
    assert {c.label for c in result.citations} == {lbl for lbl in raw_labels if lbl in EVIDENCE_LABELS}
    assert all((c.doc, c.bbox) == ("r.pdf", next(h.bbox for h in HITS if label(h) == c.label)) for c in result.citations)


def test_a_timeout_answers_extractively_with_the_reason(tmp_path: Path, llm_server: LlamaServer) -> None:
    settings = llm_settings(tmp_path, llm_server.url, llm_timeout_s=0.001, llm_max_tokens=8)
    result = answer(QUESTION, HITS, settings)
    assert result.mode == "extractive-fallback" and "74 people" in result.text
    assert result.fallback_reason.startswith("timeout after 0.001 s")
    assert result.timings["generate_s"] < 0.5  # gave up at once, not after a generation


def test_an_endpoint_error_status_answers_extractively_with_the_reason(tmp_path: Path, llm_server: LlamaServer) -> None:
    with RecordingProxy(llm_server.url, fail_status=503) as failing:
        result = answer(QUESTION, HITS, llm_settings(tmp_path, failing.url))
    assert result.mode == "extractive-fallback" and "74 people" in result.text
    assert result.fallback_reason.startswith("endpoint error: HTTP 503") and "overloaded" in result.fallback_reason
    assert len(failing.exchanges) == 1  # no retries: the user is waiting


def test_no_evidence_means_no_endpoint_call(tmp_path: Path, proxy: RecordingProxy) -> None:
    result = answer(QUESTION, [], llm_settings(tmp_path, proxy.url))
    assert result.mode == "extractive" and not result.citations and proxy.exchanges == []


def test_vision_models_get_the_evidence_pages_as_png_parts(tmp_path: Path, proxy: RecordingProxy,
                                                          sample_docs: Path) -> None:
    rendered: list[int] = []

    def page_png(hit: Hit) -> bytes:
        rendered.append(hit.page)
        return render_page_png(sample_docs / PDF_NAME, hit.page, 40, hit.bbox)

    hits = [*HITS, Hit(id="4", doc_id="r.pdf", page=1, kind="text", bbox=[56, 300, 540, 400], score=0.5, text="More.")]
    # SmolLM2 reads no images: llama.cpp answers HTTP 500 and the user still gets the extractive answer
    answer(QUESTION, hits, llm_settings(tmp_path, proxy.url, llm_vision=True, llm_max_tokens=8), page_images=page_png)
    system, user = proxy.exchanges[0].request["messages"]
    assert system["content"] == SYSTEM_PROMPT + VISION_NOTE
    text, *parts = user["content"]
    assert text["type"] == "text" and "[Figure 3] (r.pdf):" in text["text"]
    captions = [p["text"] for p in parts if p["type"] == "text"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert captions == [f"Image of page {n} of r.pdf:" for n in (1, 2, 3)] and rendered == [1, 2, 3]  # page 1 once
    for url in urls:
        assert url.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(url.removeprefix("data:image/png;base64,"))))
        assert image.format == "PNG" and abs(image.width - 595.3 * 40 / 72) <= 1


def test_page_images_go_only_to_vision_models_and_only_when_rendered(sample_docs: Path, tmp_path: Path) -> None:
    def first_page_only(hit: Hit) -> bytes | None:
        return render_page_png(sample_docs / PDF_NAME, 1, 30) if hit.page == 1 else None

    plain = build_messages(QUESTION, HITS, Settings(data_dir=tmp_path), page_images=first_page_only)
    assert plain[0]["content"] == SYSTEM_PROMPT and isinstance(plain[1]["content"], str)
    vision = build_messages(QUESTION, HITS, Settings(data_dir=tmp_path, llm_vision=True), page_images=first_page_only)
    assert [p["type"] for p in vision[1]["content"]] == ["text", "text", "image_url"]
    no_images = build_messages(QUESTION, HITS, Settings(data_dir=tmp_path, llm_vision=True), page_images=lambda h: None)
    assert no_images[0]["content"] == SYSTEM_PROMPT and isinstance(no_images[1]["content"], str)
