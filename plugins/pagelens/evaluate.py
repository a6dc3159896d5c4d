"""Retrieval and answer quality on a page-labelled question set (the format of eval/dev.jsonl)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pagelens.answer import extractive_answer
from pagelens.retrieve import distinct_pages, retrieve
from pagelens.settings import Settings

METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@5", "answer_hit")
_FUNCTION_WORDS = frozenset("a an the of in on at to for with by and or from as is are was were".split())
_APPROX = re.compile(r"^(about|approximately|approx\.?|around|roughly|~)\s+")


def load_questions(path: Path) -> list[dict[str, Any]]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                questions.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number} is not a JSON object ({exc.msg})") from exc
    missing = [q.get("id", i) for i, q in enumerate(questions) if not {"question", "doc", "pages"} <= q.keys()]
    if missing:
        raise ValueError(f"questions {missing[:5]} lack one of question/doc/pages")
    return questions


def eval_namespace(doc_dirs: list[str]) -> str:
    """A namespace per set of folders, so evaluations over different corpora never mix."""
    key = "\n".join(sorted(str(Path(d).resolve()) for d in doc_dirs))
    return "eval_" + hashlib.sha1(key.encode()).hexdigest()[:10]


def normalise(text: str) -> str:
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text.lower())  # typographic dashes and minus
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)  # "eu-average" ~ "eu average"
    text = re.sub(r"(?<=\d) (?=%)", "", text)  # "5.7 %" ~ "5.7%"
    text = re.sub(r"(?<=\d)[,`'\u2019 ](?=\d{3}\b)", "", text)  # 80,863 / 3`949 / 3 949 -> 80863 / 3949
    text = re.sub(r"[^\w%.\-+ ]+", " ", text)
    return " ".join(text.split()).strip(" .")


def answer_found(reference: str, answer: str) -> bool:
    """The normalised reference occurs in the answer; for multi-word references, all its content words do.

    Normalisation: case, thousands separators, punctuation, a leading "about", and (multi-word only)
    function words, so "a single core of an AMD EPYC" matches "single core with AMD EPYC".
    """
    ref, got = _APPROX.sub("", normalise(reference)), normalise(answer)
    if not ref:
        return False
    if re.search(rf"(?<![\w.]){re.escape(ref)}(?!\w|\.\d)", got):  # whole words: "100" is not in "1000"
        return True
    words = {w.strip(".") for w in got.split()}
    content = [w.strip(".") for w in ref.split() if w.strip(".") not in _FUNCTION_WORDS]
    return len(ref.split()) > 1 and bool(content) and all(w in words for w in content)


def score_question(ranked: list[tuple[str, int]], gold: set[tuple[str, int]], k_max: int) -> dict[str, float]:
    ranked = ranked[:k_max]
    first = next((i for i, p in enumerate(ranked, start=1) if p in gold), None)
    dcg = sum(1 / math.log2(i + 1) for i, p in enumerate(ranked[:5], start=1) if p in gold)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(gold), 5) + 1))
    return {"recall@1": float(first == 1), "recall@5": float(bool(first and first <= 5)),
            "recall@10": float(bool(first and first <= 10)), "mrr": 1 / first if first else 0.0,
            "ndcg@5": dcg / idcg}


UNANSWERABLE = "unanswerable"
BOOTSTRAP_SAMPLES = 2000


def is_answerable(question: dict[str, Any]) -> bool:
    """Questions tagged `unanswerable` (answer "", pages []) are scored for abstention, not for rank."""
    return question.get("modality") != UNANSWERABLE and bool(question.get("pages"))


def run_eval(questions: list[dict[str, Any]], namespace: str, settings: Settings, mode: str, k: int = 10,
             on_question: Callable[[], None] | None = None, generation: str | None = None,
             answers: bool = True, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Average scores over the questions; `generation` evaluates that collection generation, not the live one.

    Rank metrics and answer-hit count answerable questions only; `abstained` is the share of unanswerable
    questions the answer abstained on, `false_abstained` the share of answerable ones. `answers=False`
    measures retrieval only (answer_hit and abstention stay 0): the reindex gate needs no answers.
    `details` (if given) receives one dict per question: the gold page's rank, the answer, the outcome.
    """
    rows: list[tuple[str, dict[str, float]]] = []
    unanswerable: list[float] = []
    for q in questions:
        hits = retrieve(q["question"], namespace, settings, mode=mode, limit=max(settings.candidates, 5 * k),
                        generation=generation)
        ranked = distinct_pages(hits)
        result = extractive_answer(q["question"], hits, settings) if answers else None
        abstained = bool(result and result.abstained)
        record: dict[str, Any] = {"id": q.get("id"), "mode": mode, "modality": q.get("modality", "all"),
                                  "question": q["question"], "doc": q.get("doc"), "pages": q.get("pages"),
                                  "top": [list(p) for p in ranked[:3]], "abstained": abstained,
                                  "answer": result.text if result else None}
        if is_answerable(q):
            gold = {(q["doc"], int(p)) for p in q["pages"]}
            scores = score_question(ranked, gold, k)
            scores["answer_hit"] = float(bool(result and q.get("answer") and not abstained
                                              and answer_found(str(q["answer"]), result.text)))
            scores["false_abstained"] = float(abstained)
            rows.append((q.get("modality", "all"), scores))
            record.update(rank=gold_rank(ranked, gold), answer_hit=bool(scores["answer_hit"]))
        else:
            unanswerable.append(float(abstained))
        if details is not None:
            details.append(record)
        if on_question:
            on_question()
    result_row = _average([s for _, s in rows])
    for metric in ("recall@1", "recall@5"):
        result_row[f"{metric}_ci95"] = bootstrap_interval([s[metric] for _, s in rows])
    result_row["abstained"] = round(sum(unanswerable) / len(unanswerable), 3) if unanswerable else None
    result_row["n_unanswerable"] = len(unanswerable)
    by_modality: dict[str, list[dict[str, float]]] = defaultdict(list)
    for modality, scores in rows:
        by_modality[modality].append(scores)
    result_row["by_modality"] = {m: _average(v) for m, v in sorted(by_modality.items())}
    result_row["mode"] = mode
    return result_row


def gold_rank(ranked: list[tuple[str, int]], gold: set[tuple[str, int]]) -> int | None:
    """1-based rank of the first gold page among the distinct pages, None when it was not retrieved."""
    return next((i for i, p in enumerate(ranked, start=1) if p in gold), None)


def bootstrap_interval(values: list[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95% interval of the mean: how far the figure could move on other questions like these."""
    if not values:
        return [0.0, 0.0]
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(samples))
    return [round(means[int(0.025 * samples)], 3), round(means[int(0.975 * samples) - 1], 3)]


def _average(rows: list[dict[str, float]]) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {m: round(sum(r[m] for r in rows) / n, 3) if n else 0.0 for m in METRICS}
    out["false_abstained"] = round(sum(r.get("false_abstained", 0.0) for r in rows) / n, 3) if n else 0.0
    out["n"] = n
    return out
