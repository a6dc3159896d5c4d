"""Follow-up questions made standalone: the deterministic rules, the turn-by-turn chaining, the LLM fallback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from pagelens.followup import Turn, rewrite_turn, rules_rewrite, standalone_question
from pagelens.settings import Settings
from tests.postgres import free_port

REVENUE = "What was Acme's revenue in Europe in 2025?"


REGIONS = {"Asia", "Europe", "North America"}


def like_regions(phrase: str, candidates: Sequence[str]) -> list[float]:
    """A stand-in for MiniLM that knows one thing: regions are alike."""
    return [0.9 if phrase in REGIONS and c in REGIONS else 0.1 for c in candidates]


@pytest.mark.parametrize(("previous", "followup", "standalone"), [
    (REVENUE, "and in 2024?", "What was Acme's revenue in Europe in 2024?"),
    ("What was the revenue in Europe?", "and in 2023?", "What was the revenue in Europe in 2023?"),
    ("How many units were shipped in Q3 2025?", "what about Q4?", "How many units were shipped in Q4 2025?"),
    ("What was the all-India growth rate for 2001-2011?", "and for 1991-2001?",
     "What was the all-India growth rate for 1991-2001?"),
    ("What was Finland's employment rate for women aged 15-64 in 2005?", "and for men?",
     "What was Finland's employment rate for men in 2005?"),
    ("How many traces were recorded for the 3d-raytrace benchmark?", "and for crypto-md5 instead?",
     "How many traces were recorded for crypto-md5?"),
    ("How many pages are in the DocLayNet dataset?", "What percentage of its pages are financial reports?",
     "What percentage of DocLayNet's pages are financial reports?"),
    ("What is the calibration interval of the robot arm?", "Who performs it?",  # no name to take: carried
     "Who performs it (What is the calibration interval of the robot arm)?"),
    ("Who developed a machine that read characters?", "Who turned them into telegraph code?",
     "Who turned them into telegraph code (Who developed a machine that read characters)?"),
    ("How many members sit in Finland's parliament?", "What was the employment rate there in 2005?",
     "What was the employment rate in Finland in 2005?"),
    ("What was Acme's revenue in 2025?", "How did its revenue change from that year?",
     "How did Acme's revenue change from 2025?"),
    ("On the controlflow-recursive benchmark, which VM is fastest?", "and on access-fannkuch?",
     "On access-fannkuch, which VM is fastest?"),
    ("Which region had the most revenue?", "Why?", "Why (Which region had the most revenue)?"),
])
def test_rules_make_follow_ups_standalone(previous: str, followup: str, standalone: str) -> None:
    assert rewrite_turn(followup, previous) == standalone


def test_a_name_replaces_the_most_similar_name() -> None:
    question = "Was Acme's revenue in Europe higher than Globex's in 2025?"
    assert rewrite_turn("and Asia?", question, like_regions) == "Was Acme's revenue in Asia higher than Globex's in 2025?"
    assert rewrite_turn("and Asia?", REVENUE) == "What was Acme's revenue in Asia in 2025?"  # no encoder: the last name


@pytest.mark.parametrize("question", [
    "What does the memo say about the robot arm?",  # a new, complete question
    "How many damaged pallets were found in warehouse B?",
])
def test_standalone_questions_are_left_alone(question: str) -> None:
    assert rewrite_turn(question, REVENUE) == question


def test_turns_chain_and_assistant_turns_are_context_only() -> None:
    turns = [Turn("user", REVENUE), Turn("assistant", "21.4 million EUR [Page 2]."), Turn("user", "and Asia?"),
             Turn("assistant", "8.7 million EUR."), Turn("user", "and in 2024?")]
    result = rules_rewrite(turns)
    assert (result.question, result.method, result.rewritten) == ("What was Acme's revenue in Asia in 2024?", "rules", True)


def test_first_turns_and_switched_off_rewrites_pass_through(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert standalone_question([Turn("user", "and in 2024?")], settings).method == "none"
    off = settings.model_copy(update={"api_chat_rewrite": "off"})
    result = standalone_question([Turn("user", REVENUE), Turn("user", "and in 2024?")], off)
    assert (result.question, result.method) == ("and in 2024?", "none")


def test_an_unreachable_llm_falls_back_to_the_rules_with_the_reason(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_timeout_s=5)
    result = standalone_question([Turn("user", REVENUE), Turn("user", "and in 2024?")], settings)
    assert (result.question, result.method) == ("What was Acme's revenue in Europe in 2024?", "rules")
    assert "APIConnectionError" in result.fallback_reason
