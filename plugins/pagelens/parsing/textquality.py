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


def needs_ocr(text: str, vocab_file: Path, trusted: bool = False) -> bool:
    """True when the text layer is missing, too thin, or garbage (fonts without a ToUnicode map).

    `trusted`: the layer is the document's own text (a LibreOffice rendition of an Office file): a short slide
    or a page in another language is not a sign of a scan, so only a missing or unmapped layer needs OCR.
    """
    words = _WORD.findall(re.sub(r"\(cid:\d+\)", " ", text))
    unmapped = text.count("(cid:")
    if unmapped > len(words):  # more glyphs without a Unicode mapping than readable words
        return True
    if trusted:
        return not text.strip()
    if len(words) < MIN_WORDS:
        return True
    vocab = _vocabulary(vocab_file)
    known = sum(1 for w in words if w.lower() in vocab)
    return known / len(words) < MIN_KNOWN_SHARE


_REPEATS = re.compile(r"([^\w\s])\1{2,}")  # "......", "____", "|||" (dot leaders, rules, table borders)
_KEEP_SYMBOLS = frozenset("& % + - / = $ € £ §".split())


def _is_noise(token: str) -> bool:
    """Punctuation soup: no letter or digit at all, or (4+ characters) more symbols than letters and digits."""
    alnum = sum(c.isalnum() for c in token)
    if alnum == 0:
        return token not in _KEEP_SYMBOLS
    return len(token) >= 4 and len(token) - alnum > alnum


def clean_for_embedding(text: str) -> str:
    """Text as a sentence encoder should see it: dot leaders, rules and OCR specks removed.

    OCR of scans and tables leaves tokens that are punctuation soup; each costs MiniLM a WordPiece token
    (of 256) and pulls the vector towards noise. Words, numbers and ordinary punctuation are kept.
    """
    return " ".join(t for t in _REPEATS.sub(" ", text).split() if not _is_noise(t))
