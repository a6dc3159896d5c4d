"""Answers with citations: extractive by default, generated through any OpenAI-compatible endpoint."""

from __future__ import annotations

import logging
import math
import re
import time

from pagelens.embed import text_encoder
from pagelens.models import Answer, Citation, Hit
from pagelens.settings import Settings

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")
WORD = re.compile(r"[a-z0-9][a-z0-9.,%-]*[a-z0-9%]|[a-z0-9]")
STOP = frozenset("a an and are as at be by did do does for from has have how in is it its of on or that the this "
                 "to was were what when where which who whom why will with according many much".split())
NUMERIC_QUESTION = re.compile(r"\b(how (many|much|long|large|big|high|old|far)|what (percentage|share|number|"
                              r"year|date|amount|value|rate|cost|price)|when|which year)\b", re.I)
MAX_SENTENCES = 3
EVIDENCE_CHUNKS = 5


def label(hit: Hit) -> str:
    return f"[Figure {hit.page}]" if hit.kind == "figure" else f"[Page {hit.page}]"


def citation(hit: Hit, snippet: str) -> Citation:
    return Citation(doc=hit.doc_id, page=hit.page, bbox=hit.bbox, label=label(hit), snippet=snippet[:300],
                    score=round(hit.score, 4))


def extractive_answer(question: str, hits: list[Hit], settings: Settings) -> Answer:
    """The sentences of the top chunks that best support the question, each cited to its page."""
    start = time.perf_counter()
    candidates = [(s, rank, hit) for rank, hit in enumerate(hits[:EVIDENCE_CHUNKS]) for s in _sentences(hit.text)]
    if not candidates:
        return Answer(text="No indexed passage answers this question.", citations=[], mode="extractive")
    q_terms = _terms(question)
    wants_number = bool(NUMERIC_QUESTION.search(question))
    sentence_terms = [_terms(s) for s, _, _ in candidates]
    weights = _idf(q_terms, sentence_terms)
    vectors = text_encoder(settings).encode([question] + [s for s, _, _ in candidates])
    q_vec = vectors[0]
    scored, seen = [], set()
    for (sentence, rank, hit), terms, vec in zip(candidates, sentence_terms, vectors[1:], strict=True):
        if sentence in seen:  # overlapping chunks repeat sentences
            continue
        seen.add(sentence)
        support = _support(sentence, terms, q_terms, weights, vec, q_vec, wants_number)
        scored.append((support + 0.15 / (1 + rank), sentence, hit))
    scored.sort(key=lambda x: -x[0])
    chosen = scored[:MAX_SENTENCES]
    text = " ".join(f"{sentence} {label(hit)}" for _, sentence, hit in chosen)
    return Answer(text=text, citations=[citation(hit, sentence) for _, sentence, hit in chosen], mode="extractive",
                  timings={"answer_s": round(time.perf_counter() - start, 4)})


def _idf(q_terms: set[str], sentence_terms: list[set[str]]) -> dict[str, float]:
    """Question terms weighted by rarity among the candidate sentences: a term in every sentence decides nothing."""
    n = len(sentence_terms)
    return {t: math.log(1 + n / (1 + sum(t in terms for terms in sentence_terms))) for t in q_terms}


def _support(sentence: str, terms: set[str], q_terms: set[str], weights: dict[str, float], vec: list[float],
             q_vec: list[float], wants_number: bool) -> float:
    """How well a sentence answers: meaning close to the question, its rarer terms present, something new.

    A caption or heading that only restates the question scores high on similarity but answers nothing,
    so sentences adding no new terms lose; numeric questions favour sentences with new numbers; long
    run-on fragments (table dumps, reference lists) cover many terms by sheer length and pay for it.
    """
    semantic = sum(a * b for a, b in zip(q_vec, vec, strict=True))
    overlap = sum(weights[t] for t in q_terms & terms) / max(sum(weights.values()), 1e-9)
    new_terms = terms - q_terms
    novelty = min(len(new_terms), 4) / 4
    has_new_number = any(any(c.isdigit() for c in t) for t in new_terms)
    length_penalty = 0.2 * max(0, len(sentence.split()) - 40) / 40
    return semantic + overlap + 0.2 * novelty + (0.3 if wants_number and has_new_number else 0.0) - length_penalty


def _sentences(text: str) -> list[str]:
    """Table rows stay whole lines; prose lines are joined and split at sentence ends."""
    units: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            units.extend(SENTENCE_END.split(" ".join(prose)))
            prose.clear()

    for line in text.split("\n"):
        line = " ".join(line.split())
        if _is_row(line):
            flush()
            units.append(line)
        elif line:
            prose.append(line)
    flush()
    return [u.strip() for u in units if len(u.strip()) >= 3 and any(c.isalnum() for c in u)]


def _is_row(line: str) -> bool:
    tokens = line.split()
    numeric = sum(any(c.isdigit() for c in t) for t in tokens)
    return " | " in line or (len(tokens) >= 2 and numeric >= 2 and numeric >= 0.4 * len(tokens))


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in WORD.findall(text.lower()) if w not in STOP}


def _stem(word: str) -> str:
    """Crude suffix stripping: enough for "conducted" to meet "conduct" and "taxis" to meet "taxi"."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and word.isalpha():
            return word[: -len(suffix)]
    return word


SYSTEM_PROMPT = (
    "You answer questions about documents using only the numbered excerpts given. Cite every claim with the "
    "excerpt's label exactly as written, e.g. [Page 4] or [Figure 2]. If the excerpts do not contain the "
    "answer, say that the documents do not contain it. Be brief."
)
CITATION = re.compile(r"\[(Page|Figure) (\d+)\]")


def answer(question: str, hits: list[Hit], settings: Settings) -> Answer:
    """Generated when an endpoint is configured (falling back to extractive on any endpoint failure)."""
    if not settings.llm_base_url:
        return extractive_answer(question, hits, settings)
    try:
        return generate_answer(question, hits, settings)
    except GenerationError as exc:
        fallback = extractive_answer(question, hits, settings)
        fallback.mode = "extractive-fallback"
        logging.getLogger(__name__).warning("LLM endpoint failed, answered extractively: %s", exc)
        return fallback


class GenerationError(RuntimeError):
    """The OpenAI-compatible endpoint failed, timed out or returned nothing."""


def generate_answer(question: str, hits: list[Hit], settings: Settings) -> Answer:
    import openai

    evidence = hits[:EVIDENCE_CHUNKS]
    excerpts = "\n\n".join(f"{label(h)} ({h.doc_id}):\n{h.text[:1500]}" for h in evidence)
    client = openai.OpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key,
                           timeout=settings.llm_timeout_s, max_retries=0)
    start = time.perf_counter()
    try:
        response = client.chat.completions.create(
            model=settings.llm_model, max_tokens=settings.llm_max_tokens, temperature=0,
            messages=[{"role": "system", "content": SYSTEM_PROMPT},
                      {"role": "user", "content": f"Excerpts:\n{excerpts}\n\nQuestion: {question}"}])
    except openai.OpenAIError as exc:
        raise GenerationError(str(exc)) from exc
    text = (response.choices[0].message.content or "").strip() if response.choices else ""
    if not text:
        raise GenerationError("the model returned an empty answer")
    text, citations, removed = verify_citations(text, evidence)
    return Answer(text=text, citations=citations, mode="generated", citations_removed=removed,
                  timings={"generate_s": round(time.perf_counter() - start, 4)})


def verify_citations(text: str, evidence: list[Hit]) -> tuple[str, list[Citation], int]:
    """Keep citations whose label names a retrieved excerpt; strip the others from the text and count them."""
    by_label = {}
    for hit in evidence:
        by_label.setdefault(label(hit), hit)
    citations: dict[str, Citation] = {}
    removed = 0

    def check(match: re.Match[str]) -> str:
        nonlocal removed
        hit = by_label.get(match.group(0))
        if hit is None:
            removed += 1
            return ""
        citations.setdefault(match.group(0), citation(hit, hit.text))
        return match.group(0)

    cleaned = " ".join(CITATION.sub(check, text).split())
    return cleaned, list(citations.values()), removed
