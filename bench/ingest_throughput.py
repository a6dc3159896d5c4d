"""Ingest throughput (pages/s) for born-digital and OCR pages, beside the bare stages on the same pages.

Usage: python bench/ingest_throughput.py [DOCS_DIR]   (default ../shared/eval/docs)
Prints one table and, last, a JSON line. The pipeline figure includes parsing (in worker processes, which
start inside the timed run), OCR, chunking, redaction, MiniLM encoding and the Milvus Lite upsert, with the
model already loaded; the bare figures are pdfplumber text extraction alone,
Tesseract alone (300 dpi renders) and the MiniLM forward pass alone on the pipeline's own chunks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

BORN_DIGITAL = {"pdf2image-memory-error-test-400p.pdf": 60}  # file -> first N pages
SCANS = ["c02-22.pdf", "linn.pdf", "epson.pdf", "single_table.pdf", "graph.pdf", "8071_093.3B.tif",
         "8087_054.3B.tif", "2206.01062.tif", "old_newspaper.png", "double-column-A.jpg", "double-column-B.jpg"]


def _subset_pdf(src: Path, pages: int, dst: Path) -> None:
    import pikepdf

    with pikepdf.open(src) as pdf:
        del pdf.pages[pages:]
        pdf.save(dst)


def _pipeline(folder: Path, data: Path) -> tuple[float, int, list[str]]:
    from pagelens.pipeline.stages import ingest
    from pagelens.settings import Settings
    from pagelens.store import VectorStore

    settings = Settings(data_dir=data)
    from pagelens.embed import text_encoder

    text_encoder(settings).encode(["warm-up"])  # model loading is once per process, not per page
    start = time.perf_counter()
    reports = ingest(str(folder), "bench", settings)
    seconds = time.perf_counter() - start
    store = VectorStore(settings, "bench")
    texts = [r["text"] for r in store.client.query(store.alias, filter='namespace == "bench"', output_fields=["text"],
                                                  limit=16000)]
    return seconds, sum(r.pages for r in reports), texts


def _bare_pdfplumber(folder: Path) -> float:
    import pdfplumber

    start = time.perf_counter()
    for pdf_path in folder.glob("*.pdf"):
        with pdfplumber.open(pdf_path) as pdf:
            for page in pdf.pages:
                page.extract_text()
    return time.perf_counter() - start


def _bare_tesseract(folder: Path) -> float:
    """Render each page at 300 dpi first (not timed), then time Tesseract alone over them, 2 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import pdfplumber
    import pytesseract
    from PIL import Image

    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".pdf":
            with pdfplumber.open(path) as pdf:
                images += [p.to_image(resolution=300).original.convert("L") for p in pdf.pages]
        else:
            with Image.open(path) as im:
                for i in range(getattr(im, "n_frames", 1)):
                    im.seek(i)
                    frame = im.convert("L")
                    factor = max(1, min(3, -(-1600 // frame.width)))
                    images.append(frame.resize((frame.width * factor, frame.height * factor)))
    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(pytesseract.image_to_string, images))
    return time.perf_counter() - start


def _bare_minilm(texts: list[str]) -> float:
    from pagelens.embed import text_encoder
    from pagelens.settings import Settings

    encoder = text_encoder(Settings())
    encoder.encode(texts[:8])  # warm-up
    start = time.perf_counter()
    encoder.encode(texts)
    return time.perf_counter() - start


def main() -> None:
    docs = Path(sys.argv[1] if len(sys.argv) > 1 else REPO.parent / "shared" / "eval" / "docs")
    if not docs.is_dir():
        sys.exit(f"no documents at {docs}: pass the eval docs folder")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        sets = {"born_digital": tmp_path / "born", "ocr": tmp_path / "ocr"}
        for folder in sets.values():
            folder.mkdir()
        for name, pages in BORN_DIGITAL.items():
            _subset_pdf(docs / name, pages, sets["born_digital"] / name)
        for name in SCANS:
            shutil.copy(docs / name, sets["ocr"] / name)
        for kind, folder in sets.items():
            seconds, pages, texts = _pipeline(folder, tmp_path / f"data-{kind}")
            bare = {"minilm_s": _bare_minilm(texts)}
            bare["tesseract_s" if kind == "ocr" else "pdfplumber_s"] = (
                _bare_tesseract(folder) if kind == "ocr" else _bare_pdfplumber(folder))
            slowest = max(bare.values())
            results[kind] = {"pages": pages, "chunks": len(texts), "pipeline_s": round(seconds, 2),
                             "pages_per_s": round(pages / seconds, 2),
                             **{k: round(v, 2) for k, v in bare.items()},
                             "pipeline_over_slowest_bare": round(seconds / slowest, 2)}
    print(f"{'set':13} {'pages':>5} {'chunks':>6} {'pipeline s':>10} {'pages/s':>8}  bare stages (s)      ratio")
    for kind, r in results.items():
        bare = ", ".join(f"{k[:-2]} {r[k]}" for k in ("pdfplumber_s", "tesseract_s", "minilm_s") if k in r)
        print(f"{kind:13} {r['pages']:5} {r['chunks']:6} {r['pipeline_s']:10} {r['pages_per_s']:8}  {bare:20} "
              f"{r['pipeline_over_slowest_bare']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
