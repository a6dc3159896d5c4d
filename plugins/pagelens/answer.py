"""Answers with citations: extractive by default, generated through any OpenAI-compatible endpoint."""

from __future__ import annotations

import re
import time

from pagelens.embed import text_encoder
from pagelens.models import Answer, Citation, Hit
from pagelens.settings import Settings

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")
WORD = re.compile(r"[a-z0-9][a-z0-9.,%-]*[a-z0-9%]|[a-z0-9]")
STOP = frozenset("a an and are as at be by did do does for from has have how in is it its of on or that the this "
                 "to was were what when where which who whom why will with according many much".split())
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
    vectors = text_encoder(settings).encode([question] + [s for s, _, _ in candidates])
    q_vec = vectors[0]
    scored = []
    for (sentence, rank, hit), vec in zip(candidates, vectors[1:], strict=True):
        semantic = sum(a * b for a, b in zip(q_vec, vec, strict=True))
        overlap = len(q_terms & _terms(sentence)) / max(len(q_terms), 1)
        scored.append((semantic + overlap + 0.15 / (1 + rank), sentence, hit))
    scored.sort(key=lambda x: -x[0])
    chosen = scored[:MAX_SENTENCES]
    text = " ".join(f"{sentence} {label(hit)}" for _, sentence, hit in chosen)
    return Answer(text=text, citations=[citation(hit, sentence) for _, sentence, hit in chosen], mode="extractive",
                  timings={"answer_s": round(time.perf_counter() - start, 4)})


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
    return {w for w in WORD.findall(text.lower()) if w not in STOP}
