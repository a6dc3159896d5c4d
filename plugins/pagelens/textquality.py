"""Decide whether a page's text layer is usable or must be replaced by OCR."""

from __future__ import annotations

import functools
import re
from pathlib import Path

MIN_WORDS = 20  # fewer real words than this: treat the page as image-only
MIN_KNOWN_SHARE = 0.35  # share of words found in an English vocabulary below which text is junk

_WORD = re.compile(r"[A-Za-z]{3,}")


@functools.lru_cache(maxsize=2)
def _vocabulary(vocab_file: Path) -> frozenset[str]:
    """Whole words of the MiniLM WordPiece vocabulary: ~20k common English words, shipped offline."""
    words = vocab_file.read_text(encoding="utf-8").split()
    return frozenset(w for w in words if w.isalpha() and len(w) >= 3)


def needs_ocr(text: str, vocab_file: Path) -> bool:
    """True when the text layer is missing, too thin, or garbage (fonts without a ToUnicode map)."""
    words = _WORD.findall(re.sub(r"\(cid:\d+\)", " ", text))
    unmapped = text.count("(cid:")
    if unmapped > len(words):  # more glyphs without a Unicode mapping than readable words
        return True
    if len(words) < MIN_WORDS:
        return True
    vocab = _vocabulary(vocab_file)
    known = sum(1 for w in words if w.lower() in vocab)
    return known / len(words) < MIN_KNOWN_SHARE
