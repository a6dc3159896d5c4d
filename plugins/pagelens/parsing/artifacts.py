"""Parsed pages kept per content hash, so re-indexing (new models, new chunking) does not re-run OCR.

Only used when the vision branch is off: page rasters are not cached. Word boxes are not cached either;
chunks carry their own boxes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

from pagelens.parsing.pdf import PARSE_VERSION
from pagelens.records import Block, Page
from pagelens.settings import Settings


def cache_key(content_sha256: str, settings: Settings) -> str:
    knobs = [PARSE_VERSION, settings.ocr_dpi, settings.ocr_lang, settings.ocr_figures, settings.min_figure_area]
    return f"{content_sha256}-{hashlib.sha1(json.dumps(knobs).encode()).hexdigest()[:12]}"


def cached_pages(content_sha256: str, settings: Settings) -> list[Page] | None:
    cache = _cache_file(content_sha256, settings)
    if settings.clip_model or not cache.exists():
        return None
    return [_page(p) for p in json.loads(gzip.decompress(cache.read_bytes()))]


def store_pages(content_sha256: str, settings: Settings, pages: list[Page]) -> None:
    if settings.clip_model:
        return
    cache = _cache_file(content_sha256, settings)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(gzip.compress(json.dumps([_plain(p) for p in pages]).encode()))
    tmp.replace(cache)  # atomic: a crashed run never leaves half a cache entry


def _cache_file(content_sha256: str, settings: Settings) -> Path:
    return settings.data_dir / "parsed" / f"{cache_key(content_sha256, settings)}.json.gz"


def _plain(page: Page) -> dict:
    return {"number": page.number, "width": page.width, "height": page.height, "ocr": page.ocr,
            "tables": page.tables, "blocks": [[b.text, list(b.bbox), b.kind] for b in page.blocks]}


def _page(data: dict) -> Page:
    blocks = [Block(text, tuple(bbox), kind) for text, bbox, kind in data.pop("blocks")]
    return Page(blocks=blocks, **data)
