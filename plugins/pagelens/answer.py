"""Answers with citations: extractive by default, generated through any OpenAI-compatible endpoint."""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

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
MAX_EMBEDDED = 12  # candidate sentences scored with MiniLM per answer
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
    candidates = list({sentence: (sentence, rank, hit) for sentence, rank, hit in reversed(candidates)}.values())[::-1]
    sentence_terms = [_terms(s) for s, _, _ in candidates]  # (overlapping chunks repeat sentences: kept once)
    weights = _idf(q_terms, sentence_terms)
    # Only the lexically likeliest sentences go through MiniLM: it is most of an answer's cost per query.
    shortlist = sorted(range(len(candidates)), key=lambda i: -(_overlap(q_terms, sentence_terms[i], weights)
                                                               + 0.15 / (1 + candidates[i][1])))[:MAX_EMBEDDED]
    vectors = text_encoder(settings).encode([question] + [candidates[i][0] for i in shortlist])
    q_vec = vectors[0]
    scored = []
    for i, vec in zip(shortlist, vectors[1:], strict=True):
        sentence, rank, hit = candidates[i]
        support = _support(sentence, sentence_terms[i], q_terms, weights, vec, q_vec, wants_number)
        scored.append((support + 0.15 / (1 + rank), sentence, hit))
    scored.sort(key=lambda x: -x[0])
    chosen = scored[:MAX_SENTENCES]
    text = " ".join(f"{sentence} {label(hit)}" for _, sentence, hit in chosen)
    return Answer(text=text, citations=[citation(hit, sentence) for _, sentence, hit in chosen], mode="extractive",
                  timings={"answer_s": round(time.perf_counter() - start, 4)})


def _overlap(q_terms: set[str], terms: set[str], weights: dict[str, float]) -> float:
    """Share of the question's (rarity-weighted) terms the sentence contains."""
    return sum(weights[t] for t in q_terms & terms) / max(sum(weights.values()), 1e-9)


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
    overlap = _overlap(q_terms, terms, weights)
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
    "You answer questions about documents using only the labelled excerpts given, never outside knowledge. "
    "Cite every claim with the excerpt's label exactly as written, e.g. [Page 4] or [Figure 2]. If the excerpts "
    "do not contain the answer, say that the documents do not contain it. Be brief."
)
VISION_NOTE = (
    " Images of the excerpts' pages follow the question, the excerpt's region shaded; read tables and charts "
    "there, and cite the excerpt labels, never the images."
)
EXCERPT_CHARS = 1500
# Anything bracketed that starts like a citation ("[Page 2]", "[page 2, 3]", "[Pages 2 and 4]", "[Fig. 3]"),
# so no variant the model invents slips past the check.
CITATION = re.compile(r"\[\s*(?:page|figure|fig\.?)s?\s*\d[^\[\]]{0,60}\]", re.I)
CITED_NUMBER = re.compile(r"(?:(page|figure|fig\.?)s?\s*)?(?<![\w.])(\d+)(?![\w.])", re.I)  # not "q3-2025.pdf"
PageImages = Callable[[Hit], bytes | None]
log = logging.getLogger(__name__)


def answer(question: str, hits: list[Hit], settings: Settings, page_images: PageImages | None = None) -> Answer:
    """Generated when an endpoint is configured and there is evidence; extractive otherwise.

    Endpoint failures and timeouts never raise: the extractive answer comes back as mode
    "extractive-fallback" with the reason. `page_images` renders a hit's page (PNG bytes) for vision
    models; the caller supplies it because only the caller knows where documents live.
    """
    if not settings.llm_base_url or not hits:
        return extractive_answer(question, hits, settings)
    try:
        return generate_answer(question, hits, settings, page_images)
    except GenerationError as exc:
        log.warning("LLM endpoint failed, answered extractively: %s", exc)
        fallback = extractive_answer(question, hits, settings)
        fallback.mode, fallback.fallback_reason = "extractive-fallback", str(exc)
        fallback.timings["generate_s"] = round(exc.seconds, 4)
        return fallback


class GenerationError(RuntimeError):
    """The OpenAI-compatible endpoint failed, timed out or returned nothing; the message is the fallback reason."""

    def __init__(self, reason: str, seconds: float = 0.0) -> None:
        super().__init__(reason)
        self.seconds = seconds


def build_messages(question: str, hits: list[Hit], settings: Settings,
                   page_images: PageImages | None = None) -> list[dict[str, Any]]:
    """The chat messages for the endpoint: the rules, the labelled excerpts, the question, page images if vision."""
    evidence = hits[:EVIDENCE_CHUNKS]
    excerpts = "\n\n".join(f"{label(h)} ({h.doc_id}):\n{h.text[:EXCERPT_CHARS]}" for h in evidence)
    prompt = f"Excerpts:\n{excerpts}\n\nQuestion: {question}"
    images = page_image_parts(evidence, page_images) if settings.llm_vision and page_images else []
    if not images:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    return [{"role": "system", "content": SYSTEM_PROMPT + VISION_NOTE},
            {"role": "user", "content": [{"type": "text", "text": prompt}, *images]}]


def page_image_parts(evidence: list[Hit], page_images: PageImages) -> list[dict[str, Any]]:
    """One captioned PNG data-URL part per distinct evidence page (its best hit's box shaded)."""
    parts: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for hit in evidence:
        if (hit.doc_id, hit.page) in seen:
            continue
        seen.add((hit.doc_id, hit.page))
        png = page_images(hit)
        if png:
            parts.append({"type": "text", "text": f"Image of page {hit.page} of {hit.doc_id}:"})
            parts.append({"type": "image_url",
                          "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}})
    return parts


def generate_answer(question: str, hits: list[Hit], settings: Settings, page_images: PageImages | None = None) -> Answer:
    """Ask the endpoint; raise GenerationError (with a reason a user can act on) on any failure."""
    import openai

    evidence = hits[:EVIDENCE_CHUNKS]
    messages = build_messages(question, hits, settings, page_images)
    start = time.perf_counter()
    try:
        with openai.OpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key,
                           timeout=settings.llm_timeout_s, max_retries=0) as client:
            response = client.chat.completions.create(model=settings.llm_model, max_tokens=settings.llm_max_tokens,
                                                      temperature=0, messages=messages)  # type: ignore[arg-type]
    except openai.OpenAIError as exc:
        raise GenerationError(_failure_reason(exc, settings), time.perf_counter() - start) from exc
    seconds = time.perf_counter() - start
    text = _reply_text(response)
    if not text:
        raise GenerationError(f"endpoint error: {settings.llm_model} returned an empty answer", seconds)
    text, citations, removed = verify_citations(text, evidence)
    return Answer(text=text, citations=citations, mode="generated", citations_removed=removed,
                  timings={"generate_s": round(seconds, 4)})


def _reply_text(response: object) -> str:
    """The first choice's text; "" for a reply that is not a chat completion (servers that only claim compatibility)."""
    choices = getattr(response, "choices", None) or []
    content = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
    return content.strip() if isinstance(content, str) else ""


def _failure_reason(exc: Exception, settings: Settings) -> str:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"timeout after {settings.llm_timeout_s:g} s (PAGELENS_LLM_TIMEOUT_S)"
    if isinstance(exc, openai.APIStatusError):
        return f"endpoint error: HTTP {exc.status_code} from {settings.llm_base_url}: {str(exc.message)[:200]}"
    if isinstance(exc, openai.APIConnectionError):
        return f"endpoint error: cannot reach {settings.llm_base_url} ({exc.__cause__ or exc})"[:300]
    return f"endpoint error: {type(exc).__name__}: {exc}"[:300]


def verify_citations(text: str, evidence: list[Hit]) -> tuple[str, list[Citation], int]:
    """Keep citations whose label names a retrieved excerpt; strip the others from the text and count them.

    A compound citation ("[Page 2, 9]") is rewritten as its supported labels ("[Page 2]").
    """
    by_label: dict[str, Hit] = {}
    for hit in evidence:
        by_label.setdefault(label(hit), hit)
    citations: dict[str, Citation] = {}
    removed = 0

    def check(match: re.Match[str]) -> str:
        nonlocal removed
        kept = []
        for cited in _cited_labels(match.group(0)):
            hit = by_label.get(cited)
            if hit is None:
                removed += 1
                continue
            citations.setdefault(cited, citation(hit, hit.text))
            kept.append(cited)
        return " ".join(kept)

    cleaned = " ".join(CITATION.sub(check, text).split())
    return cleaned, list(citations.values()), removed


def _cited_labels(bracket: str) -> list[str]:
    """'[Pages 2 and 4]' -> ['[Page 2]', '[Page 4]']; a bare number takes the kind named before it."""
    labels, kind = [], "Page"
    for named, number in CITED_NUMBER.findall(bracket):
        if named:
            kind = "Page" if named.lower().startswith("page") else "Figure"
        labels.append(f"[{kind} {number}]")
    return labels
