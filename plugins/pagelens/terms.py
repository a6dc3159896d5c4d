"""Question and evidence terms: lower-cased words and numbers, stop words dropped, crudely stemmed.

Shared by the extractive answer (which sentence carries the question) and the page reranker (which page).
"""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9][a-z0-9.,%-]*[a-z0-9%]|[a-z0-9]")
STOP = frozenset("a an and are as at be by did do does for from has have how in is it its of on or that the this "
                 "to was were what when where which who whom why will with according many much".split())


def term_sequence(text: str) -> list[str]:
    """The text's terms in order (phrases are pairs of neighbours in this sequence)."""
    known = _TERM_OF
    if len(known) > TERM_MEMO_SIZE:
        known.clear()
    out = []
    for word in WORD.findall(text.lower()):
        term = known.get(word)
        if term is None:
            term = known[word] = "" if word in STOP else stem(word)
        if term:
            out.append(term)
    return out


# Each word's term ("" for a stop word), memoised: the reranker reads ~8k words a query, and a dictionary
# look-up per word costs a tenth of stemming it again.
_TERM_OF: dict[str, str] = {}
TERM_MEMO_SIZE = 200_000


def terms(text: str) -> set[str]:
    return set(term_sequence(text))


def stem(word: str) -> str:
    """Crude suffix stripping: enough for "conducted" to meet "conduct" and "taxis" to meet "taxi"."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and word.isalpha():
            return word[: -len(suffix)]
    return word
