"""Ingest throughput (pages/s) for born-digital and OCR pages, beside the bare stages on the same pages.

Usage: python bench/ingest_throughput.py [DOCS_DIR]   (default ../shared/eval/docs)
Prints one table and, last, a JSON line. The pipeline figure includes parsing (in worker processes, which
start inside the timed run), OCR, chunking, redaction, MiniLM encoding and the Milvus Lite upsert, with the
model already loaded; the bare figures are PDFium text + every character box alone, Tesseract alone
(300 dpi renders, two at a time: the scans' pages, and the born-digital pages' figure crops as the pipeline
reads them) and the MiniLM forward pass alone (the configured CPU backend, inputs already tokenized and padded)
on the pipeline's own chunks. `cpu_s` is the CPU time the pipeline used (this process, the parse workers and
their Tesseract children); over the machine's cores it is the floor no overlap of stages can go below.
`encode_only` re-runs the pipeline from the parsed artifacts of the first run (the encoder pod's work: chunk,
redact, embed, upsert) against that bare forward. Peak RSS is this process's and its largest child's (the parse workers).
"""

from __future__ import annotations

import json
import os
import resource
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


def _cpu_seconds() -> float:
    """CPU time of this process and of every finished descendant (parse workers, their Tesseract runs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _pipeline(folder: Path, data: Path, parsed_from: Path | None = None) -> tuple[float, float, int, list[str]]:
    from pagelens.embed import text_encoder
    from pagelens.pipeline.stages import ingest
    from pagelens.settings import Settings
    from pagelens.store import VectorStore

    settings = Settings(data_dir=data)
    if parsed_from is not None:  # start from the parsed artifacts: only the encode half runs
        shutil.copytree(parsed_from / "parsed", data / "parsed")
    text_encoder(settings).encode(["warm-up"])  # model loading (and the ONNX export) is once per process
    start, cpu = time.perf_counter(), _cpu_seconds()
    reports = ingest(str(folder), "bench", settings)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    store = VectorStore(settings, "bench")
    texts = [r["text"] for r in store.client.query(store.alias, filter='namespace == "bench"', output_fields=["text"],
                                                  limit=16000)]
    return seconds, cpu, sum(r.pages for r in reports), texts


def _bare_pdfium(folder: Path) -> float:
    """PDFium text and every character's box, nothing else (the floor of born-digital parsing)."""
    import pypdfium2 as pdfium

    start = time.perf_counter()
    for pdf_path in folder.glob("*.pdf"):
        pdf = pdfium.PdfDocument(str(pdf_path))
        for page in pdf:
            text = page.get_textpage()
            text.get_text_range()
            for i in range(text.count_chars()):
                text.get_charbox(i, loose=True)
            text.close()
            page.close()
        pdf.close()
    return time.perf_counter() - start


def _bare_figure_ocr(folder: Path) -> float:
    """The born-digital pages' figure crops, cut from 300 dpi renders beforehand, OCR'd alone two at a time the
    way the pipeline reads figures (sparse-text mode, small crops upscaled)."""
    from concurrent.futures import ThreadPoolExecutor

    import pypdfium2 as pdfium

    from pagelens.parsing.ocr import ocr_image
    from pagelens.parsing.pdf import _figure_boxes, _render
    from pagelens.parsing.pdfium import page_content
    from pagelens.settings import Settings

    settings, crops = Settings(), []
    for pdf_path in folder.glob("*.pdf"):
        pdf = pdfium.PdfDocument(str(pdf_path))
        for number, page in enumerate(pdf, start=1):
            figures = _figure_boxes(page_content(page), settings.min_figure_area)
            if figures:
                raster, scale = _render(page, settings.ocr_dpi, settings.max_render_pixels, number)
                crops += [(raster.crop(tuple(round(v / scale) for v in fig)), scale) for fig in figures]
        pdf.close()
    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(lambda c: ocr_image(c[0], settings.ocr_lang, c[1], kind="figure"), crops))
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


def _bare_minilm(texts: list[str], data: Path) -> float:
    """The model forward alone over the chunks' token windows, tokenized and padded beforehand."""
    from pagelens.embed import text_encoder
    from pagelens.settings import Settings

    encoder = text_encoder(Settings(data_dir=data))
    windows, _owners, _sizes = encoder._windows(texts)
    windows.sort(key=len)
    size = encoder.batch_size
    batches = [encoder.tokenizer.pad({"input_ids": windows[i:i + size]}, return_tensors="pt")
               for i in range(0, len(windows), size)]
    encoder._states(batches[0]["input_ids"], batches[0]["attention_mask"])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        encoder._states(batch["input_ids"], batch["attention_mask"])
    return time.perf_counter() - start


def _peak_rss_mb() -> dict[str, int]:
    own, child = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"peak_rss_mb": own.ru_maxrss // 1024, "peak_child_rss_mb": child.ru_maxrss // 1024}


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
            data = tmp_path / f"data-{kind}"
            seconds, cpu, pages, texts = _pipeline(folder, data)
            bare = {"minilm_s": _bare_minilm(texts, data)}
            if kind == "ocr":
                bare["tesseract_s"] = _bare_tesseract(folder)
            else:
                bare["pdfium_s"], bare["figure_ocr_s"] = _bare_pdfium(folder), _bare_figure_ocr(folder)
            slowest = max(bare.values())
            results[kind] = {"pages": pages, "chunks": len(texts), "pipeline_s": round(seconds, 2),
                             "pages_per_s": round(pages / seconds, 2), "cpu_s": round(cpu, 1),
                             "cpu_floor_s": round(cpu / (os.cpu_count() or 1), 1),
                             **{k: round(v, 2) for k, v in bare.items()},
                             "pipeline_vs_slowest_bare": round(slowest / seconds, 2)}  # throughput ratio
            if kind == "born_digital":
                encode_s, encode_cpu, _pages, _texts = _pipeline(folder, tmp_path / "data-encode", parsed_from=data)
                results["encode_only"] = {"pages": pages, "chunks": len(texts), "pipeline_s": round(encode_s, 2),
                                          "pages_per_s": round(pages / encode_s, 2), "cpu_s": round(encode_cpu, 1),
                                          "cpu_floor_s": round(encode_cpu / (os.cpu_count() or 1), 1),
                                          "chunks_per_s": round(len(texts) / encode_s, 2),
                                          "minilm_s": round(bare["minilm_s"], 2),
                                          "bare_chunks_per_s": round(len(texts) / bare["minilm_s"], 2),
                                          "pipeline_vs_slowest_bare": round(bare["minilm_s"] / encode_s, 2)}
    results["memory"] = _peak_rss_mb()
    print(f"{'set':13} {'pages':>5} {'chunks':>6} {'pipeline s':>10} {'pages/s':>8} {'cpu s':>6} {'floor s':>7}  "
          f"bare stages (s)                          ratio")
    for kind, r in results.items():
        if kind == "memory":
            continue
        bare = ", ".join(f"{k[:-2]} {r[k]}" for k in ("pdfium_s", "figure_ocr_s", "tesseract_s", "minilm_s") if k in r)
        print(f"{kind:13} {r['pages']:5} {r['chunks']:6} {r['pipeline_s']:10} {r['pages_per_s']:8} {r['cpu_s']:6} "
              f"{r['cpu_floor_s']:7}  {bare:40} "
              f"{r['pipeline_vs_slowest_bare']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
