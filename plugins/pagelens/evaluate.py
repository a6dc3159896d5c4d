"""Retrieval and answer quality on a page-labelled question set (the format of eval/dev.jsonl)."""

from __future__ import annotations

import hashlib
import json
import math
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


def run_eval(questions: list[dict[str, Any]], namespace: str, settings: Settings, mode: str, k: int = 10,
             on_question: Callable[[], None] | None = None, generation: str | None = None,
             answers: bool = True) -> dict[str, Any]:
    """Average scores over the questions; `generation` evaluates that collection generation, not the live one.

    `answers=False` measures retrieval only (answer_hit stays 0): the reindex gate needs no answers.
    """
    rows: list[tuple[str, dict[str, float]]] = []
    for q in questions:
        hits = retrieve(q["question"], namespace, settings, mode=mode, limit=max(settings.candidates, 5 * k),
                        generation=generation)
        gold = {(q["doc"], int(p)) for p in q["pages"]}
        scores = score_question(distinct_pages(hits), gold, k)
        scores["answer_hit"] = 0.0
        if answers and q.get("answer"):
            answer = extractive_answer(q["question"], hits, settings)
            scores["answer_hit"] = float(answer_found(str(q["answer"]), answer.text))
        rows.append((q.get("modality", "all"), scores))
        if on_question:
            on_question()
    result = _average([s for _, s in rows])
    by_modality: dict[str, list[dict[str, float]]] = defaultdict(list)
    for modality, scores in rows:
        by_modality[modality].append(scores)
    result["by_modality"] = {m: _average(v) for m, v in sorted(by_modality.items())}
    result["mode"] = mode
    return result


def _average(rows: list[dict[str, float]]) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {m: round(sum(r[m] for r in rows) / n, 3) if n else 0.0 for m in METRICS}
    out["n"] = n
    return out
