"""Metrics and answer matching of `pagelens eval`."""

from __future__ import annotations

import pytest

from pagelens.evaluate import answer_found, eval_namespace, load_questions, score_question


def test_rank_metrics_over_distinct_pages() -> None:
    ranked = [("a.pdf", 3), ("b.pdf", 1), ("a.pdf", 5)]
    scores = score_question(ranked, {("a.pdf", 5)}, 10)
    assert scores["recall@1"] == 0 and scores["recall@5"] == 1 and scores["mrr"] == pytest.approx(1 / 3)
    assert scores["ndcg@5"] == pytest.approx(0.5)  # 1/log2(4) over an ideal 1/log2(2)
    assert score_question(ranked, {("c.pdf", 1)}, 10) == {"recall@1": 0.0, "recall@5": 0.0, "recall@10": 0.0,
                                                         "mrr": 0.0, "ndcg@5": 0.0}
    two_gold = score_question([("a.pdf", 1), ("a.pdf", 2)], {("a.pdf", 1), ("a.pdf", 2)}, 10)
    assert two_gold["ndcg@5"] == pytest.approx(1.0)


@pytest.mark.parametrize(("reference", "answer", "found"), [
    ("80,863", "the total was 80863 checks [Page 1]", True),
    ("CHF 3,949.75", "Amount CHF 3`949.75", True),
    ("about 43%", "a share of 43% in 2005", True),
    ("Nagaland, -0.47 per cent", "Nagaland 78.71 ... -0.47 (per cent)", True),
    ("a single core of an AMD EPYC 7763", "on a single core with AMD EPYC 7763 CPU", True),
    ("100", "1000 traces", False),
    ("Nagaland, -0.47 per cent", "Nagaland grew 0.47 per cent", False),
])
def test_answer_matching_normalises_formats_not_content(reference, answer, found) -> None:
    assert answer_found(reference, answer) is found


def test_question_file_errors_name_the_line(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "q", "doc": "d.pdf", "pages": [1]}\n{oops\n')
    with pytest.raises(ValueError, match=r"q.jsonl:2"):
        load_questions(path)


def test_eval_namespace_depends_on_the_folders(tmp_path) -> None:
    assert eval_namespace([str(tmp_path / "a")]) != eval_namespace([str(tmp_path / "b")])
    assert eval_namespace([str(tmp_path / "a"), str(tmp_path / "b")]) == eval_namespace([str(tmp_path / "b"),
                                                                                          str(tmp_path / "a")])


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_questions() -> None:
    from pagelens.evaluate import bootstrap_interval

    small, large = bootstrap_interval([1.0, 0.0] * 10), bootstrap_interval([1.0, 0.0] * 200)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    assert bootstrap_interval([1.0] * 30) == [1.0, 1.0]


def test_unanswerable_questions_are_told_apart() -> None:
    from pagelens.evaluate import is_answerable

    assert is_answerable({"question": "q", "doc": "a.pdf", "pages": [2], "modality": "table"})
    assert not is_answerable({"question": "q", "doc": "a.pdf", "pages": [], "modality": "unanswerable"})


def test_eval_table_of_unanswerable_questions_shows_abstentions_not_zero_recall(capsys) -> None:
    from pagelens.cli import _print_eval
    from pagelens.evaluate import METRICS

    zero = dict.fromkeys(METRICS, 0.0)
    only_unanswerable = {"n": 0, **zero, "false_abstained": 0.0, "by_modality": {}, "recall@1_ci95": [0.0, 0.0],
                         "recall@5_ci95": [0.0, 0.0], "n_unanswerable": 12, "abstained": 0.25}
    _print_eval({"hybrid": only_unanswerable})
    assert capsys.readouterr().out.strip() == "hybrid   abstained on 3 of 12 unanswerable questions"
    mixed = {**only_unanswerable, "n": 4, "recall@1": 0.75}
    _print_eval({"hybrid": mixed})
    out = capsys.readouterr().out
    assert "hybrid   all            4      0.750" in out and "abstained on 3 of 12 unanswerable" in out
