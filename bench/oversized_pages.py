"""Hostile page sizes through ingest and the page-image endpoint: time and memory of each.

Usage: python bench/oversized_pages.py [--skip-big-scan]

Writes three files: a 1.5 kB PDF with one 200 x 200 inch page, a 13,500 x 13,500 px PNG (182 Mpx, a line of
text) and a PNG whose header claims 100,000 x 100,000 px. Runs `pagelens ingest` on each (peak RSS of the
ingest process, its report), then `pagelens serve` with auth off and GETs page 1 of each at the API's dpi:
status, seconds, the server's RSS before and after and its peak (VmHWM). Ingest runs with the caps raised to
what older code applied (`RAISED`), so the documents reach the index in both and the API's own cap is what is
measured. Run it with PYTHONPATH pointing at another checkout's `plugins` to measure that code. Prints a
table and, last, a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

PAGELENS = str(Path(sys.executable).with_name("pagelens"))
# Ingest runs with the caps older code applied (it rendered up to PAGELENS_MAX_IMAGE_PIXELS and decoded scans up to
# twice that), so the documents reach the index there and here alike and the API's own cap is what is measured.
RAISED = {"poster.pdf": {"PAGELENS_MAX_RENDER_PIXELS": "150000000"},
          "big.png": {"PAGELENS_MAX_RENDER_PIXELS": "300000000", "PAGELENS_MAX_IMAGE_PIXELS": "300000000"},
          "bomb.png": {}}


def poster(path: Path) -> None:
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=(14400, 14400))
    pdf.drawString(72, 72, "A very large page")
    pdf.save()


def png(path: Path, width: int, height: int, rows: int | None = None) -> None:
    """A white greyscale PNG, compressed row by row; `rows` < height writes a header that lies (a bomb)."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer, row = zlib.compressobj(9), b"\x00" + b"\xff" * width
    data = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def big_scan(path: Path) -> None:
    """13,500 x 13,500 px, white with one line of large text (a page without text indexes no chunk)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (13_500, 13_500), 255)
    ImageDraw.Draw(image).text((500, 500), "Site plan, sheet 4 of 9", fill=0, font=ImageFont.load_default(size=240))
    image.save(path, dpi=(300, 300))


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


PEAK = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "sys.stderr.write(f'\\npeak {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n'); sys.exit(code)")


def ingest(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run `pagelens ingest` under a wrapper that reports the largest peak RSS of it and its parse workers."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, PAGELENS, "ingest", str(path), "--namespace", "ns", "--json"],
                          env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.strip().splitlines()[-1].split()[1]) / 1024
    report = json.loads(done.stdout.strip().splitlines()[-1])["documents"][0] if done.returncode == 0 else {}
    return {"status": report.get("status", f"exit {done.returncode}"), "reason": report.get("reason", done.stderr[-300:]),
            "seconds": round(seconds, 1), "peak_rss_mb": round(peak)}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=600) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-big-scan", action="store_true", help="leave out the 13,500 px PNG (slow to OCR)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="oversized-"))
    files = {"poster.pdf": poster, "big.png": big_scan,
             "bomb.png": lambda p: png(p, 100_000, 100_000, rows=1)}
    if args.skip_big_scan:
        files.pop("big.png")
    env = {**os.environ, "PAGELENS_DATA_DIR": str(root / "data"), "PAGELENS_API_AUTH": "false",
           "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
    results: dict[str, dict[str, Any]] = {}
    for name, write in files.items():
        folder = root / "docs" / name.replace(".", "_")
        folder.mkdir(parents=True)
        write(folder / name)
        results[name] = {"bytes": (folder / name).stat().st_size, "ingest": ingest(folder / name, {**env, **RAISED[name]})}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([PAGELENS, "serve", "--port", str(port)], env={**env, "PAGELENS_API_WARM_ON_START": "false"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        for name, row in results.items():
            before, _ = rss_mb(server.pid)
            started = time.perf_counter()
            status, body = get(f"{base}/v1/documents/{name}/pages/1.png?namespace=ns")
            seconds = time.perf_counter() - started
            after, peak = rss_mb(server.pid)
            error = "" if status == 200 else json.loads(body).get("error", {}).get("code", "")
            row["get"] = {"status": status, "error": error, "seconds": round(seconds, 2),
                          "rss_before_mb": round(before), "rss_after_mb": round(after), "peak_rss_mb": round(peak),
                          "png_bytes": len(body) if status == 200 else 0}
    finally:
        server.terminate()
        server.wait(30)
    print(f"{'file':11} {'bytes':>9}  {'ingest':12} {'s':>6} {'peak MB':>7}  {'GET':>4} {'code':16} {'s':>6} "
          f"{'RSS MB before -> after (peak)':>30}")
    for name, row in results.items():
        i, g = row["ingest"], row["get"]
        print(f"{name:11} {row['bytes']:9}  {i['status']:12} {i['seconds']:6} {i['peak_rss_mb']:7}  {g['status']:4} "
              f"{g['error']:16} {g['seconds']:6} {g['rss_before_mb']:>12} -> {g['rss_after_mb']} ({g['peak_rss_mb']})")
        if i["status"] != "indexed":
            print(f"{'':11} ingest: {i['reason'][:150]}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
