"""Second stage of hybrid retrieval: the best fused pages re-scored by how literally they carry the question.

Score fusion finds the right document far more often than the right page of it: its title page, or the page
before a table's continuation, shares the document's vocabulary and outranks the page that holds the row,
the figure or the heading the question names. What tells them apart is cheap and general: which page holds
the question's rarer terms (weighted by rarity among the candidates, so the document's own vocabulary decides
nothing), its phrases (neighbouring terms still neighbours on the page), and its numbers and years. Each is a
share in [0, 1] added to the fused score with a weight chosen by cross-validation (bench/tune_fusion.py rerank).

Only the candidates' retrieved chunks are read: no model runs and nothing is fetched, so it costs milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import pairwise

from pagelens.records import Hit
from pagelens.terms import term_sequence

Page = tuple[str, int]


@dataclass(frozen=True)
class RerankWeights:
    coverage: float  # rarity-weighted share of the question's terms on the page
    phrase: float  # share of the question's neighbouring-term pairs found as neighbours on the page
    number: float  # share of the question's numbers (terms with a digit) on the page

    @property
    def total(self) -> float:
        return self.coverage + self.phrase + self.number


@dataclass(frozen=True)
class PageEvidence:
    page: Page
    fused: float
    coverage: float
    phrase: float
    number: float

    def score(self, weights: RerankWeights) -> float:
        """In [0, 1] like the fused score: the weighted sum divided by its largest possible value."""
        raw = (self.fused + weights.coverage * self.coverage + weights.phrase * self.phrase
               + weights.number * self.number)
        return raw / (1.0 + weights.total)


def page_evidence(question: str, fused: list[Hit], chunks: Iterable[Hit], pages: int) -> list[PageEvidence]:
    """Features of the first `pages` pages of a fused ranking, read from every retrieved chunk of those pages."""
    order: dict[Page, float] = {}
    for hit in fused:
        order.setdefault((hit.doc_id, hit.page), hit.score)
    candidates = list(order)[:pages]
    texts: dict[Page, dict[str, str]] = {page: {} for page in candidates}
    for hit in chunks:
        if (hit.doc_id, hit.page) in texts:
            texts[(hit.doc_id, hit.page)][hit.id] = hit.text
    question_seq = term_sequence(question)
    q_terms = set(question_seq)
    q_pairs = set(pairwise(question_seq))
    q_numbers = {t for t in q_terms if any(c.isdigit() for c in t)}
    page_seqs = {page: term_sequence("\n".join(texts[page].values())) for page in candidates}
    page_terms = {page: set(seq) for page, seq in page_seqs.items()}
    n = len(candidates)
    rarity = {t: math.log(1 + n / (1 + sum(t in page_terms[p] for p in candidates))) for t in q_terms}
    total_rarity = sum(rarity.values()) or 1.0
    evidence = []
    for page in candidates:
        present = q_terms & page_terms[page]
        pairs = set(pairwise(page_seqs[page]))
        evidence.append(PageEvidence(
            page=page, fused=order[page],
            coverage=sum(rarity[t] for t in present) / total_rarity,
            phrase=len(q_pairs & pairs) / len(q_pairs) if q_pairs else 0.0,
            number=len(q_numbers & present) / len(q_numbers) if q_numbers else 0.0,
        ))
    return evidence


def rerank(question: str, fused: list[Hit], chunks: Iterable[Hit], weights: RerankWeights, pages: int) -> list[Hit]:
    """`fused` (chunks grouped by page, best page first) with its first `pages` pages re-scored and re-ordered.

    `chunks`: every chunk any leg retrieved (a page's evidence is all of its retrieved chunks).
    """
    if pages <= 0 or weights.total <= 0 or not fused:
        return fused
    return reordered(fused, page_evidence(question, fused, chunks, pages), weights)


def reordered(fused: list[Hit], evidence: list[PageEvidence], weights: RerankWeights) -> list[Hit]:
    """`fused` ordered by the evidence's scores. Pages without evidence (past the candidates) keep their fused
    order and their fused score scaled like the others', so they stay below."""
    scores = {e.page: e.score(weights) for e in evidence}
    scale = 1.0 + weights.total
    position = {hit.id: i for i, hit in enumerate(fused)}
    rescored = [(scores.get((h.doc_id, h.page), h.score / scale), h) for h in fused]
    rescored.sort(key=lambda sh: (-sh[0], position[sh[1].id]))
    return [replace(hit, score=round(score, 6)) for score, hit in rescored]
