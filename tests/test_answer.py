"""Answers: extractive sentence choice, citation checking, fallback when the LLM endpoint fails."""

from __future__ import annotations

import socket

import pytest

from pagelens.answer import answer, build_messages, extractive_answer, verify_citations
from pagelens.models import Hit
from pagelens.settings import Settings

pytestmark = pytest.mark.integration  # MiniLM scores the sentences

HITS = [
    Hit(id="1", doc_id="r.pdf", page=2, kind="table", bbox=[10, 20, 300, 200], score=0.9,
        text="Revenue by region\nRegion | 2024 | 2025\nEurope | 19.0 | 21.4\nTotal | 41.7 | 48.2"),
    Hit(id="2", doc_id="r.pdf", page=3, kind="figure", bbox=[50, 60, 500, 400], score=0.8,
        text="Units shipped per quarter\nQ1 1,150 Q2 1,420 Q3 1,610 Q4 1,980"),
    Hit(id="3", doc_id="r.pdf", page=1, kind="text", bbox=[0, 0, 100, 100], score=0.7,
        text="Acme Robotics opened a plant in Eindhoven in March 2025. The plant employs 74 people."),
]


def test_extractive_answer_picks_the_supporting_sentence_and_cites_it(tmp_path) -> None:
    result = extractive_answer("How many people work at the Eindhoven plant?", HITS, Settings(data_dir=tmp_path))
    assert result.mode == "extractive" and "74 people" in result.text
    cited = next(c for c in result.citations if "74" in c.snippet)
    assert (cited.doc, cited.page, cited.label, cited.bbox) == ("r.pdf", 1, "[Page 1]", [0, 0, 100, 100])


def test_figure_chunks_are_cited_as_figures(tmp_path) -> None:
    result = extractive_answer("How many units were shipped in Q4?", HITS, Settings(data_dir=tmp_path))
    assert "[Figure 3]" in result.text


def test_unsupported_citations_are_removed_and_counted() -> None:
    text, citations, removed = verify_citations("Europe grew [Page 2] and Asia [Page 9], see [Figure 3].", HITS)
    assert text == "Europe grew [Page 2] and Asia , see [Figure 3]."
    assert removed == 1 and [c.label for c in citations] == ["[Page 2]", "[Figure 3]"]


def test_unreachable_endpoint_falls_back_to_an_extractive_answer(tmp_path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: the real client gets a real refusal
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(data_dir=tmp_path, llm_base_url=f"http://127.0.0.1:{port}/v1", llm_timeout_s=2)
    result = answer("How many people work at the Eindhoven plant?", HITS, settings)
    assert result.mode == "extractive-fallback" and "74 people" in result.text
    assert result.fallback_reason.startswith(f"endpoint error: cannot reach http://127.0.0.1:{port}/v1")


def test_without_an_endpoint_the_answer_says_it_is_extractive(tmp_path) -> None:
    result = answer("How many people work at the Eindhoven plant?", HITS, Settings(data_dir=tmp_path))
    assert result.mode == "extractive" and result.fallback_reason == "" and result.citations_removed == 0


def test_citation_variants_are_checked_label_by_label() -> None:
    text, citations, removed = verify_citations(
        "Europe led [page 2, 9]; units rose [Fig. 3] and [Pages 1 and 3] (see [Page 7 (r.pdf)]).", HITS)
    assert text == "Europe led [Page 2]; units rose [Figure 3] and [Page 1] (see )."
    assert removed == 3 and [c.label for c in citations] == ["[Page 2]", "[Figure 3]", "[Page 1]"]


def test_the_prompt_holds_the_top_excerpts_labelled_and_trimmed(tmp_path) -> None:
    long_hits = [Hit(id=str(n), doc_id="big.pdf", page=n, kind="text", bbox=[0, 0, 1, 1], score=1 / n, text="x" * 5000)
                 for n in range(1, 8)]
    system, user = build_messages("What is x?", long_hits, Settings(data_dir=tmp_path))
    assert system["role"] == "system" and "only the labelled excerpts" in system["content"]
    assert [f"[Page {n}] (big.pdf):" in user["content"] for n in range(1, 8)] == [True] * 5 + [False] * 2
    assert "x" * 1500 in user["content"] and "x" * 1501 not in user["content"]
