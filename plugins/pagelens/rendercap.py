"""The one pixel cap of every page raster (OCR at ingest, API page images, LLM page images), applied before
anything is allocated, and the bound on concurrent renders per process."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator

from pagelens.errors import PageTooLarge, RenderBusy

# No path renders below this: a page that fits the cap only at a lower resolution is refused everywhere, so
# whatever ingest indexed, the API can show (at the API's lower dpi it fits too).
MIN_RENDER_DPI = 50
_SLOTS: dict[int, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def render_dpi(width_pt: float, height_pt: float, dpi: float, max_pixels: int, what: str = "the page") -> float:
    """`dpi`, lowered as far as MIN_RENDER_DPI so a page of this size (PDF points) stays within `max_pixels`;
    PageTooLarge when even that would exceed it."""
    area_in = max(width_pt * height_pt / 72**2, 1e-6)
    fitting = (max_pixels / area_in) ** 0.5
    if fitting < min(dpi, MIN_RENDER_DPI):
        raise PageTooLarge(f"{what} is {width_pt / 72:.0f} x {height_pt / 72:.0f} in: {area_in * MIN_RENDER_DPI**2:,.0f} px "
                           f"even at {MIN_RENDER_DPI} dpi, over the render cap of {max_pixels:,} px "
                           "(PAGELENS_MAX_RENDER_PIXELS)")
    return min(dpi, fitting)


def check_raster(width_px: int, height_px: int, max_pixels: int, what: str = "the image") -> None:
    """A raster decoded at its own size (a scan) must itself fit the cap."""
    if width_px * height_px > max_pixels:
        raise PageTooLarge(f"{what} is {width_px} x {height_px} = {width_px * height_px:,} px, over the render cap of "
                           f"{max_pixels:,} px (PAGELENS_MAX_RENDER_PIXELS); downscale it or raise the cap")


def pillow_bomb_pixels(exc: Exception) -> int | None:
    """The pixel count in Pillow's DecompressionBombError message (it refuses at open what is over twice its
    own limit, before any cap of ours is consulted)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


@contextlib.contextmanager
def render_slot(concurrency: int, wait_s: float) -> Iterator[None]:
    """Hold one of `concurrency` render slots of this process; RenderBusy if none frees up within `wait_s`."""
    with _SLOTS_LOCK:
        slots = _SLOTS.setdefault(max(1, concurrency), threading.BoundedSemaphore(max(1, concurrency)))
    if not slots.acquire(timeout=wait_s):
        raise RenderBusy(f"all {concurrency} page renders of this process are busy; retry in a few seconds")
    try:
        yield
    finally:
        slots.release()
