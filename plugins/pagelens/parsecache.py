"""Parsed pages kept per content hash, so re-indexing (new models, new chunking) does not re-run OCR.

Only used when the vision branch is off: page rasters are not cached. Word boxes are not cached either;
chunks carry their own boxes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from pagelens.models import Block, Page
from pagelens.parse import PARSE_VERSION, extract_pages
from pagelens.settings import Settings


def cache_key(content_sha256: str, settings: Settings) -> str:
    knobs = [PARSE_VERSION, settings.ocr_dpi, settings.ocr_lang, settings.ocr_figures, settings.min_figure_area]
    return f"{content_sha256}-{hashlib.sha1(json.dumps(knobs).encode()).hexdigest()[:12]}"


def parse_cached(path: Path, content_sha256: str, settings: Settings) -> list[Page]:
    if settings.clip_model:
        return extract_pages(path, settings)
    cache = settings.data_dir / "parsed" / f"{cache_key(content_sha256, settings)}.json.gz"
    if cache.exists():
        return [_page(p) for p in json.loads(gzip.decompress(cache.read_bytes()))]
    pages = extract_pages(path, settings)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(json.dumps([_plain(p) for p in pages]).encode()))
    tmp.replace(cache)  # atomic: a crashed run never leaves half a cache entry
    return pages


def _plain(page: Page) -> dict:
    return {"number": page.number, "width": page.width, "height": page.height, "ocr": page.ocr,
            "tables": page.tables, "blocks": [[b.text, list(b.bbox), b.kind] for b in page.blocks]}


def _page(data: dict) -> Page:
    blocks = [Block(text, tuple(bbox), kind) for text, bbox, kind in data.pop("blocks")]
    return Page(blocks=blocks, **data)
