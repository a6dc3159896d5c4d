"""Answers with citations: extractive by default, generated through any OpenAI-compatible endpoint."""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pagelens.records import Answer, Citation, Hit
from pagelens.settings import Settings
from pagelens.terms import STOP
from pagelens.terms import terms as _terms
from pagelens.tracing import context_carrier, current_span_attribute, span

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")
NUMERIC_QUESTION = re.compile(r"\b(how (many|much|long|large|big|high|old|far)|what (percentage|share|number|"
                              r"year|date|amount|value|rate|cost|price)|when|which year)\b", re.I)
DATE_QUESTION = re.compile(r"\b(when|(what|which) (year|date|day|month))\b", re.I)
YEAR = re.compile(r"^(1[89]|20)\d\d$")  # "2025" answers "when", never "how many"
SECOND_SENTENCE_MARGIN = 0.1  # a second sentence must score within this of the best
EVIDENCE_CHUNKS = 5
RANK_PRIOR = 0.15  # a sentence of the n-th evidence chunk gains RANK_PRIOR / n: ties go to the better-ranked chunk


ABSTAIN_TEXT = "The documents do not say."


def label(hit: Hit, with_doc: bool = False) -> str:
    """`[Page N]` / `[Figure N]`; `[Page N, doc]` when the answer draws on several documents."""
    kind = "Figure" if hit.kind == "figure" else "Page"
    return f"[{kind} {hit.page}, {hit.doc_id}]" if with_doc else f"[{kind} {hit.page}]"


def labels_for(hits: list[Hit]) -> dict[str, str]:
    """Each hit's label (by hit id): plain while one document is cited, naming the document once several are."""
    several = len({h.doc_id for h in hits}) > 1
    return {h.id: label(h, with_doc=several) for h in hits}


def citation(hit: Hit, snippet: str, cited_as: str | None = None) -> Citation:
    return Citation(doc=hit.doc_id, page=hit.page, bbox=hit.bbox, label=cited_as or label(hit), snippet=snippet[:300],
                    score=round(hit.score, 4))


def abstention() -> Answer:
    return Answer(text=ABSTAIN_TEXT, citations=[], mode="extractive", abstained=True)


def extractive_answer(question: str, hits: list[Hit], settings: Settings) -> Answer:
    """The sentence (or table row) of the top chunks that best answers, cited to its page; an abstention when
    no sentence supports the question well enough (its `support` below `settings.abstain_below`).

    A second sentence is added only when it scores nearly as well and brings question terms the first lacks.
    """
    start = time.perf_counter()
    scored = rank_sentences(question, hits)
    if not scored or scored[0].support < settings.abstain_below:
        result = abstention()
        result.timings["answer_s"] = round(time.perf_counter() - start, 4)
        return result
    chosen = [scored[0]]
    for other in scored[1:3]:
        if other.score >= scored[0].score - SECOND_SENTENCE_MARGIN and other.terms - scored[0].terms & other.q_terms:
            chosen.append(other)
            break
    labels = labels_for([c.hit for c in chosen])
    parts, citations, cited = [], [], set()
    for n, candidate in enumerate(chosen):
        text = candidate.display
        if n == 0 and candidate.wants_number and (value := lead_value(candidate.sentence, question)):
            text = f"{value}: {text}"
        tag = labels[candidate.hit.id]
        next_tag = labels[chosen[n + 1].hit.id] if n + 1 < len(chosen) else None
        parts.append(text if next_tag == tag else f"{text} {tag}")  # one label per run of the same page
        if tag not in cited:
            cited.add(tag)
            citations.append(citation(candidate.hit, candidate.sentence, tag))
    return Answer(text=" ".join(parts), citations=citations, mode="extractive",
                  timings={"answer_s": round(time.perf_counter() - start, 4)})


@dataclass
class Scored:
    """A candidate answer unit: a sentence or table row of an evidence chunk, with its scores.

    `support` is what the sentence itself says for the question (terms, novelty, a new number), comparable
    across questions: abstention is decided on it. `score` adds how strongly retrieval ranked its chunk and
    orders the candidates of one question.
    """

    score: float
    support: float
    sentence: str
    hit: Hit
    terms: set[str]
    q_terms: set[str]
    wants_number: bool
    header: str = ""  # the column headers when the unit is a table row

    @property
    def display(self) -> str:
        return f"{self.sentence} (columns: {self.header})" if self.header else self.sentence


def rank_sentences(question: str, hits: list[Hit]) -> list[Scored]:
    """The evidence sentences scored for how well they answer the question, best first.

    No model runs here: the question's meaning was already matched when retrieval scored the chunks (MiniLM
    and BM25, fused and reranked), so a sentence carries its chunk's score relative to the best evidence
    chunk's, and its own terms decide within a chunk. Re-embedding the sentences with MiniLM cost 250 ms a
    query on this machine and chose worse sentences on the dev questions (README, "Answers").
    """
    evidence = hits[:EVIDENCE_CHUNKS]
    candidates = [(s, rank, hit, header) for rank, hit in enumerate(evidence) for s, header in _units(hit)]
    if not candidates:
        return []
    q_terms = _terms(question)
    wants_number, wants_date = bool(NUMERIC_QUESTION.search(question)), bool(DATE_QUESTION.search(question))
    # Overlapping chunks repeat sentences: each is kept once, at its best rank.
    candidates = list({c[0]: c for c in reversed(candidates)}.values())[::-1]
    sentence_terms = [_terms(c[0]) for c in candidates]
    weights = _idf(q_terms, sentence_terms)
    best = max(max(h.score for h in evidence), 0.0)
    scored = []
    for (sentence, rank, hit, header), terms in zip(candidates, sentence_terms, strict=True):
        support = _support(sentence, terms, q_terms, weights, wants_number, wants_date)
        relevance = max(hit.score, 0.0) / best if best > 0 else 0.0
        scored.append(Scored(support + relevance + RANK_PRIOR / (1 + rank), support, sentence, hit, terms, q_terms,
                             wants_number, header))
    scored.sort(key=lambda c: -c.score)
    return scored


NUMBER = re.compile(r"(?<![\w.])[-+−]?[$€£]?\d[\d,.'`]*(?:\s?(?:%|per cent|percent))?(?![\w])")
UNIT = re.compile(r"\s*([A-Za-z%][\w%/.-]{0,20})")
LABEL_WORD = re.compile(r"\b(?:table|figure|fig|page|section|chapter|no|item)\.?\s*$", re.I)  # "Table 4", "p. 7"


def lead_value(sentence: str, question: str) -> str:
    """The number (with the word after it as its unit) the sentence adds to the question, for a value-first answer.

    The value nearest the question's terms wins when there are several; "" when the sentence adds no number.
    A year leads only the answer to a question that asks when.
    """
    asked, wants_date = set(NUMBER.findall(question)), bool(DATE_QUESTION.search(question))
    found = [m for m in NUMBER.finditer(sentence) if m.group(0).strip() not in asked
             and not LABEL_WORD.search(sentence[:m.start()]) and (wants_date or not YEAR.match(m.group(0).strip()))]
    if not found:
        return ""
    lowered, q_terms = sentence.lower(), [t for t in _terms(question) if not t[0].isdigit()]
    anchors = [i for t in q_terms for i in [lowered.find(t)] if i >= 0]

    def distance(m: re.Match[str]) -> int:
        return min((abs(m.start() - a) for a in anchors), default=0)

    best = min(found, key=distance)
    value = best.group(0).strip().rstrip(".,")
    unit = UNIT.match(sentence, best.end())
    if unit and not value.endswith(("%", "cent")) and unit.group(1).lower() not in STOP:
        value += " " + unit.group(1).rstrip(".,")
    return value


def _overlap(q_terms: set[str], terms: set[str], weights: dict[str, float]) -> float:
    """Share of the question's (rarity-weighted) terms the sentence contains."""
    return sum(weights[t] for t in q_terms & terms) / max(sum(weights.values()), 1e-9)


def _idf(q_terms: set[str], sentence_terms: list[set[str]]) -> dict[str, float]:
    """Question terms weighted by rarity among the candidate sentences: a term in every sentence decides nothing."""
    n = len(sentence_terms)
    return {t: math.log(1 + n / (1 + sum(t in terms for terms in sentence_terms))) for t in q_terms}


def _support(sentence: str, terms: set[str], q_terms: set[str], weights: dict[str, float], wants_number: bool,
             wants_date: bool) -> float:
    """How well a sentence answers: the question's rarer terms present, and something new.

    A caption or heading that only restates the question carries its terms but answers nothing,
    so sentences adding no new terms lose; numeric questions favour sentences with new numbers; long
    run-on fragments (table dumps, reference lists) cover many terms by sheer length and pay for it. A year
    is a new value only for a question that asks when.
    """
    overlap = _overlap(q_terms, terms, weights)
    new_terms = terms - q_terms
    novelty = min(len(new_terms), 4) / 4 if new_terms else -RESTATES_PENALTY
    has_new_number = any(any(c.isdigit() for c in t) and (wants_date or not YEAR.match(t)) for t in new_terms)
    length_penalty = 0.2 * max(0, len(sentence.split()) - 40) / 40
    heading = HEADING_PENALTY if is_heading(sentence) else 0.0
    return (overlap + 0.2 * novelty + (0.3 if wants_number and has_new_number else 0.0) - length_penalty
            - heading)


CAPTION = re.compile(r"^\s*(?:table|figure|fig\.?|chart|exhibit|graph|source|note)s?\b", re.I)
HEADING_PENALTY = 0.8  # a caption or heading names what a table or chart holds, never the value asked for
RESTATES_PENALTY = 1.5  # times the novelty weight: a sentence with no term beyond the question's answers nothing


def is_heading(sentence: str) -> bool:
    """A caption ("Table 4: ...", "Figure 2 ...") or a short all-caps heading."""
    letters = [c for c in sentence if c.isalpha()]
    shouting = bool(letters) and sum(c.isupper() for c in letters) / len(letters) > 0.7 and len(sentence.split()) <= 20
    return bool(CAPTION.match(sentence)) or shouting


def _units(hit: Hit) -> list[tuple[str, str]]:
    """(sentence or row, column headers) of a chunk; a table chunk's first line is its header row."""
    units = _sentences(hit.text)
    if hit.kind != "table" or not hit.text.strip():
        return [(u, "") for u in units]
    header = " ".join(hit.text.strip().split("\n", 1)[0].split())
    rows = [(u, header if _is_row(u) else "") for u in units if u != header]
    return rows or [(header, "")]  # the header row names the columns; the answer is in a row under it


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


SYSTEM_PROMPT = (
    "You answer questions about documents using only the labelled excerpts given, never outside knowledge. "
    "Cite every claim with the excerpt's label exactly as written, e.g. [Page 4] or [Figure 2]. Lead with the "
    "answer itself (for a number or a date, the value first) and be brief. If the excerpts do not contain the "
    "answer, reply only that the documents do not say, and cite nothing."
)
VISION_NOTE = (
    " Images of the excerpts' pages follow the question, the excerpt's region shaded; read tables and charts "
    "there, and cite the excerpt labels, never the images."
)
EXCERPT_CHARS = 1500
# Anything bracketed that starts like a citation ("[Page 2]", "[page 2, 3]", "[Pages 2 and 4]", "[Fig. 3]"),
# so no variant the model invents slips past the check.
CITATION = re.compile(r"\[\s*(?:page|figure|fig\.?)s?\s*\d[^\[\]]{0,300}\]", re.I)
CITED_NUMBER = re.compile(r"(?:(page|figure|fig\.?)s?\s*)?(?<![\w.])(\d+)(?![\w.])", re.I)  # not "q3-2025.pdf"
PageImages = Callable[[Hit], bytes | None]
log = logging.getLogger(__name__)


def answer(question: str, hits: list[Hit], settings: Settings, page_images: PageImages | None = None) -> Answer:
    """Generated when an endpoint is configured and there is evidence; extractive otherwise.

    Endpoint failures and timeouts never raise: the extractive answer comes back as mode
    "extractive-fallback" with the reason. `page_images` renders a hit's page (PNG bytes) for vision
    models; the caller supplies it because only the caller knows where documents live.
    """
    with span("generate_answer", evidence=min(len(hits), EVIDENCE_CHUNKS)) as generation:
        result = _answer(question, hits, settings, page_images)
        generation.set_attribute("answer.mode", result.mode)
        generation.set_attribute("citations", len(result.citations))
        generation.set_attribute("citations_removed", result.citations_removed)
        generation.set_attribute("abstained", result.abstained)
        if result.mode != "extractive":
            generation.set_attribute("llm.model", settings.llm_model)
        if result.fallback_reason:
            generation.set_attribute("fallback_reason", result.fallback_reason)
        return result


def _answer(question: str, hits: list[Hit], settings: Settings, page_images: PageImages | None) -> Answer:
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
    labels = labels_for(evidence)
    excerpts = "\n\n".join(f"{labels[h.id]} ({h.doc_id}):\n{h.text[:EXCERPT_CHARS]}" for h in evidence)
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
                           timeout=settings.llm_timeout_s, max_retries=0,
                           default_headers=context_carrier()) as client:  # the trace goes on to the endpoint
            response = client.chat.completions.create(model=settings.llm_model, max_tokens=settings.llm_max_tokens,
                                                      temperature=0, messages=messages)  # type: ignore[arg-type]
    except openai.OpenAIError as exc:
        raise GenerationError(_failure_reason(exc, settings), time.perf_counter() - start) from exc
    seconds = time.perf_counter() - start
    _record_usage(response)
    text = _reply_text(response)
    if not text:
        raise GenerationError(f"endpoint error: {settings.llm_model} returned an empty answer", seconds)
    text, citations, removed = verify_citations(text, evidence)
    abstained = says_documents_lack_answer(text)
    return Answer(text=text, citations=[] if abstained else citations, mode="generated", citations_removed=removed,
                  timings={"generate_s": round(seconds, 4)}, abstained=abstained)


# How models say the excerpts do not answer ("The documents do not contain ...", "No information about ...").
LACKS_ANSWER = re.compile(
    r"\b(?:(?:do|does|did)\s*(?:not|n't)\s+(?:contain|mention|say|state|include|provide|specify|give|answer|cover)"
    r"|(?:is|are)\s*(?:not|n't)\s+(?:mentioned|stated|given|provided|specified|included|available)"
    r"|no\s+(?:information|mention|data|details?|answer)\b|not\s+(?:found|present)\s+in"
    r"|(?:cannot|can't|unable to)\s+(?:answer|determine|find|tell))", re.I)


def says_documents_lack_answer(text: str) -> bool:
    """The reply's first sentence says the excerpts lack the answer: reported as an abstention."""
    first = SENTENCE_END.split(text.strip(), maxsplit=1)[0] if text.strip() else ""
    return bool(LACKS_ANSWER.search(first))


def _record_usage(response: object) -> None:
    """The endpoint's token counts on the current span (generate_answer), when it reports them."""
    usage = getattr(response, "usage", None)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, name, None)
        if isinstance(value, int):
            current_span_attribute(f"llm.{name}", value)


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

    A compound citation ("[Page 2, 9]") is rewritten as its supported labels ("[Page 2]"). With excerpts from
    several documents, labels name the document; a bare "[Page 2]" is resolved to the excerpt it can only mean
    (or, if several documents have that page, the best-ranked one) and rewritten with its document.
    """
    labels = labels_for(evidence)
    by_label: dict[str, Hit] = {}
    for hit in evidence:
        by_label.setdefault(labels[hit.id].lower(), hit)
    citations: dict[str, Citation] = {}
    removed = 0

    def resolve(bracket: str) -> list[Hit | None]:
        exact = by_label.get(" ".join(bracket.split()).lower())
        if exact is not None:
            return [exact]
        found: list[Hit | None] = []
        for plain in _cited_labels(bracket):
            same = [h for h in evidence if label(h) == plain]
            named = [h for h in same if h.doc_id.lower() in bracket.lower()]
            found.append((named or same or [None])[0])
        return found

    def check(match: re.Match[str]) -> str:
        nonlocal removed
        kept = []
        for hit in resolve(match.group(0)):
            if hit is None:
                removed += 1
                continue
            cited = labels[hit.id]
            citations.setdefault(cited, citation(hit, hit.text, cited))
            if cited not in kept:
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
