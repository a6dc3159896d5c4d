"""Names from outside (file names, object keys, doc ids) as terminals and logs may show them."""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(name: str) -> str:
    r"""`name` with control and format characters escaped (`\n`, `\x1b`, `\u202e`): a hostile file name can
    neither forge lines in a log or report nor move the cursor or reorder text in a terminal."""
    return "".join(_NAMED.get(ch) or (_escape(ch) if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch)
                   for ch in name)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
