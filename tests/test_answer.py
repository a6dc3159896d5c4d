"""Answers: extractive sentence choice, citation checking, fallback when the LLM endpoint fails."""

from __future__ import annotations

import socket

import pytest

from pagelens.answer import answer, build_messages, extractive_answer, verify_citations
from pagelens.records import Hit
from pagelens.settings import Settings

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


def test_the_answer_is_the_sentence_that_answers_not_padding(tmp_path) -> None:
    result = extractive_answer("How many people work at the Eindhoven plant?", HITS, Settings(data_dir=tmp_path))
    assert "Q4" not in result.text and "Revenue" not in result.text  # no unrelated sentences
    assert result.text.count("[Page 1]") == 1 and len(result.citations) == 1 and not result.abstained


def test_a_number_question_leads_with_the_value(tmp_path) -> None:
    result = extractive_answer("How many people work at the Eindhoven plant?", HITS, Settings(data_dir=tmp_path))
    assert result.text.startswith("74 people:")


def test_a_table_row_comes_with_its_column_headers(tmp_path) -> None:
    result = extractive_answer("What was the total revenue in 2025?", HITS, Settings(data_dir=tmp_path))
    assert "Total | 41.7 | 48.2 (columns: Revenue by region)" in result.text or "(columns: Region | 2024 | 2025)" \
        in result.text, result.text


def test_weak_evidence_gives_an_abstention_that_cites_nothing(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, abstain_below=0.5)
    result = extractive_answer("What colour is the CEO's car?", HITS, settings)
    assert result.abstained and result.citations == [] and result.text == "The documents do not say."
    assert not extractive_answer("How many people work at the Eindhoven plant?", HITS, settings).abstained


def test_labels_name_the_document_once_several_are_cited() -> None:
    two = [HITS[0], Hit(id="9", doc_id="other.pdf", page=2, kind="text", bbox=[0, 0, 1, 1], score=0.5, text="x")]
    text, citations, removed = verify_citations("A [Page 2, other.pdf] and B [Page 2] and C [Page 2, r.pdf].", two)
    assert text == "A [Page 2, other.pdf] and B [Page 2, r.pdf] and C [Page 2, r.pdf]."  # bare: the best-ranked
    assert removed == 0 and [(c.doc, c.label) for c in citations] == [("other.pdf", "[Page 2, other.pdf]"),
                                                                      ("r.pdf", "[Page 2, r.pdf]")]
    _system, user = build_messages("q?", two, Settings())
    assert "[Page 2, r.pdf] (r.pdf):" in user["content"] and "[Page 2, other.pdf] (other.pdf):" in user["content"]


@pytest.mark.parametrize(("reply", "abstained"), [
    ("The documents do not say how many people work there.", True),
    ("The excerpts don't mention the CEO's car.", True),
    ("There is no information about this in the documents.", True),
    ("74 people work at the plant [Page 1].", False),
    ("74 people work there [Page 1]. The report does not say when it opened.", False),
])
def test_a_model_that_says_the_excerpts_lack_the_answer_is_an_abstention(reply, abstained) -> None:
    from pagelens.answer import says_documents_lack_answer

    assert says_documents_lack_answer(reply) is abstained


def test_a_caption_that_restates_the_question_loses_to_the_row_that_answers(tmp_path) -> None:
    table = Hit(id="t", doc_id="f.pdf", page=5, kind="table", bbox=[0, 0, 1, 1], score=0.9,
                text="Group | 2004 | 2005\nTable 4: Employment rates in Finland by gender\nWomen | 65.5 % | 66.5 %\n"
                     "Men | 69.7 % | 70.3 %")
    result = extractive_answer("What was the employment rate of women in Finland in 2005?", [table],
                               Settings(data_dir=tmp_path))
    assert "Women | 65.5 % | 66.5 %" in result.text and not result.text.startswith("Table"), result.text
    assert "(columns: Group | 2004 | 2005)" in result.text


def test_between_equally_worded_sentences_the_better_retrieved_chunk_answers(tmp_path) -> None:
    def hit(n: int, score: float) -> Hit:
        return Hit(id=str(n), doc_id="m.pdf", page=n, kind="text", bbox=[0, 0, 1, 1], score=score,
                   text=f"The pump is serviced every {n} months by the site team.")

    weak, strong = hit(4, 0.3), hit(9, 0.9)
    for order in ([weak, strong], [strong, weak]):  # retrieval's score decides, not only the list position
        result = extractive_answer("How often is the pump serviced?", order, Settings(data_dir=tmp_path))
        assert result.citations[0].page == 9, result.text


def test_a_year_does_not_answer_how_many(tmp_path) -> None:
    plant = Hit(id="p", doc_id="r.pdf", page=1, kind="text", bbox=[0, 0, 1, 1], score=0.9,
                text="The Eindhoven plant opened in 2025 with staff from Acme Robotics. It employs 74 engineers.")
    result = extractive_answer("How many engineers does the Eindhoven plant employ?", [plant], Settings(data_dir=tmp_path))
    assert result.text.startswith("74 engineers:"), result.text
    dated = extractive_answer("When did the Eindhoven plant open?", [plant], Settings(data_dir=tmp_path))
    assert dated.text.startswith("2025"), dated.text
