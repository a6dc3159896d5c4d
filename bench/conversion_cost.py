"""What converting Office files to PDF costs: seconds per page, one soffice per batch vs one per file, and the
conversion's share of a whole ingest (fetch, convert, parse, chunk, embed with MiniLM, upsert into Milvus Lite).

Corpus: the 12 third-party Office files of ../shared/eval/office (Word, PowerPoint, Excel, legacy formats),
or with --generated the invented handbook and review of `pagelens.samples_office` (copied --copies times).

Usage: python bench/conversion_cost.py [--docs DIR | --generated --copies N] [--batch-size 8] [--workdir DIR]
Prints a table and last a JSON line. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from pagelens.parsing import renditions as renditions_module  # noqa: E402
from pagelens.parsing.convert import ConverterLimits, convert_to_pdf, is_convertible  # noqa: E402
from pagelens.pipeline import stages  # noqa: E402
from pagelens.settings import Settings  # noqa: E402


def _corpus(args: argparse.Namespace, into: Path) -> Path:
    docs = into / "docs"
    docs.mkdir(parents=True)
    if args.generated:
        from pagelens.samples_office import write_docx, write_pptx

        for copy in range(args.copies):
            write_docx(docs / f"handbook_{copy}.docx")
            write_pptx(docs / f"review_{copy}.pptx")
    else:
        for path in sorted(Path(args.docs).iterdir()):
            if is_convertible(path.name):
                shutil.copyfile(path, docs / path.name)
    return docs


def _pages(pdf: Path) -> int:
    import pikepdf

    with pikepdf.open(pdf) as handle:
        return len(handle.pages)


def conversion_modes(docs: Path, work: Path) -> dict[str, float]:
    """Wall seconds to convert every file: one soffice per family (the default) vs one soffice per file."""
    files = {p.name: p for p in sorted(docs.iterdir())}
    start = time.perf_counter()
    batched = convert_to_pdf(files, work / "batched", ConverterLimits())
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    for name, path in files.items():
        convert_to_pdf({name: path}, work / f"single-{len(name)}-{abs(hash(name))}", ConverterLimits())
    single_s = time.perf_counter() - start
    pages = sum(_pages(r.pdf) for r in batched.values() if r.pdf)
    return {"files": len(files), "pages": pages, "batched_s": round(batched_s, 2), "per_file_s": round(single_s, 2),
            "batched_s_per_page": round(batched_s / max(pages, 1), 3),
            "per_file_s_per_page": round(single_s / max(pages, 1), 3)}


def ingest_share(docs: Path, work: Path, batch_size: int) -> dict[str, float]:
    """A whole ingest, with the time spent in the conversion step summed as it runs."""
    spent: list[float] = []
    convert = renditions_module.make_renditions

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return convert(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    stages.make_renditions = timed  # type: ignore[assignment]
    settings = Settings(data_dir=work / "data")
    start = time.perf_counter()
    reports = stages.ingest(str(docs), "bench", settings, batch_size=batch_size)
    total = time.perf_counter() - start
    stages.make_renditions = convert  # type: ignore[assignment]
    indexed = [r for r in reports if r.status == "indexed"]
    pages = sum(r.pages for r in indexed)
    return {"indexed": len(indexed), "quarantined": sum(r.status == "quarantined" for r in reports), "pages": pages,
            "ingest_s": round(total, 2), "convert_s": round(sum(spent), 2),
            "convert_share": round(sum(spent) / total, 3), "ingest_s_per_page": round(total / max(pages, 1), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default=str(REPO.parent / "shared" / "eval" / "office"))
    parser.add_argument("--generated", action="store_true")
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir or None, ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        docs = _corpus(args, work)
        modes = conversion_modes(docs, work)
        print(json.dumps(modes), flush=True)
        share = ingest_share(docs, work, args.batch_size)
    print(f"{modes['files']} files, {modes['pages']} PDF pages")
    print(f"conversion, one soffice per family: {modes['batched_s']:7.2f} s  ({modes['batched_s_per_page']:.3f} s/page)")
    print(f"conversion, one soffice per file:   {modes['per_file_s']:7.2f} s  ({modes['per_file_s_per_page']:.3f} s/page)")
    print(f"ingest: {share['ingest_s']:.2f} s for {share['pages']} pages ({share['ingest_s_per_page']:.3f} s/page), "
          f"conversion {share['convert_s']:.2f} s = {100 * share['convert_share']:.1f} % of it")
    print(json.dumps({**modes, **{f"ingest_{k}": v for k, v in share.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
