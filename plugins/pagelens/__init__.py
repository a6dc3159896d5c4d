"""pagelens: multimodal retrieval-augmented generation over enterprise documents."""

from __future__ import annotations

__version__ = "0.1.0"
