"""Office, OpenDocument, RTF, HTML and text files -> PDF with LibreOffice headless, so they take the PDF parse path
(pages, word boxes, tables, citations) like any PDF.

Isolation: LibreOffice runs in its own process group with an address-space cap, a fresh profile whose settings
forbid macros, and a time limit per file; a file that crashes it, times out or cannot be loaded fails alone
with the converter's reason, and the files after it are converted by a fresh process.

One `soffice` converts all files of a family (writer, html, impress, calc, text) in a batch, one after another:
start-up (about 2 s here) is paid once per batch instead of once per file. Outputs appear in order, so the
watchdog knows which file is being converted and gives each its own time limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pagelens import procs
from pagelens.errors import ConversionFailed, ConversionTimeout, DocumentError, UnsupportedDocument

# What LibreOffice opens as each family; the PDF export filter (and its options) is per family.
WRITER_SUFFIXES = {".docx", ".docm", ".doc", ".dotx", ".odt", ".rtf"}
HTML_SUFFIXES = {".html", ".htm"}  # imported as a Writer document: Writer/Web drops <h1> and adds a blank page
IMPRESS_SUFFIXES = {".pptx", ".pptm", ".ppt", ".ppsx", ".odp"}
CALC_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".txt", ".md", ".markdown"}  # read as UTF-8 plain text (Markdown shows as its source)
CONVERTIBLE_SUFFIXES = WRITER_SUFFIXES | HTML_SUFFIXES | IMPRESS_SUFFIXES | CALC_SUFFIXES | TEXT_SUFFIXES

# Decks export their notes pages: one page per slide (page number = slide number) holding the slide and the
# speaker notes, so notes are indexed and a cited note shows with its slide; slide text is not duplicated.
_IMPRESS_PDF = 'pdf:impress_pdf_Export:{"ExportNotesPages":{"type":"boolean","value":"true"},' \
               '"ExportOnlyNotesPages":{"type":"boolean","value":"true"}}'
_IN_FILTERS = {"text": "Text (encoded):UTF8,LF,,", "html": "HTML (StarWriter)"}
POLL_S = 0.1

# A fresh profile per process, written before it starts: macros never run (no trusted locations, level
# "very high", execution disabled), and documents never update links to outside files or sites on load.
_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse">
<value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse">
<value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="SecureURL" oor:op="fuse">
<value/></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="BlockUntrustedRefererLinks"
 oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Writer/Content/Update"><prop oor:name="Link" oor:op="fuse">
<value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Content/Update"><prop oor:name="Link" oor:op="fuse">
<value>1</value></prop></item>
</oor:items>
"""


# Leading bytes each binary format must have: LibreOffice would otherwise import any bytes as plain text.
_ZIP, _OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAGIC = {**dict.fromkeys((".docx", ".docm", ".dotx", ".pptx", ".pptm", ".ppsx", ".xlsx", ".xlsm", ".odt", ".odp", ".ods"),
                          _ZIP), **dict.fromkeys((".doc", ".ppt", ".xls"), _OLE), ".rtf": b"{\\rtf"}


def is_convertible(name: str) -> bool:
    return Path(name).suffix.lower() in CONVERTIBLE_SUFFIXES


def family(suffix: str) -> str:
    suffix = suffix.lower()
    for name, suffixes in (("writer", WRITER_SUFFIXES), ("html", HTML_SUFFIXES), ("impress", IMPRESS_SUFFIXES),
                           ("calc", CALC_SUFFIXES), ("text", TEXT_SUFFIXES)):
        if suffix in suffixes:
            return name
    raise ValueError(f"'{suffix}' files are not converted")


@dataclass
class Converted:
    """One file's outcome: the PDF, or the DocumentError that quarantines it; seconds spent on it."""

    pdf: Path | None
    error: DocumentError | None
    seconds: float


@dataclass(frozen=True)
class ConverterLimits:
    soffice: str = "soffice"
    timeout_s: float = 120.0  # per file, the process start included for the first one
    memory_mb: int = 2048  # address space of the whole LibreOffice process tree


def convert_to_pdf(files: dict[str, Path], workdir: Path, limits: ConverterLimits) -> dict[str, Converted]:
    """Convert each file (keyed by any id) to PDF under `workdir`; every key gets a Converted back."""
    if files and shutil.which(limits.soffice) is None:
        raise FileNotFoundError(f"LibreOffice ({limits.soffice!r}) is not installed: apt-get install libreoffice-core "
                                "libreoffice-writer libreoffice-impress libreoffice-calc (or set PAGELENS_SOFFICE)")
    by_family: dict[str, list[tuple[str, Path]]] = {}
    results: dict[str, Converted] = {}
    for key, path in files.items():
        if (refusal := _wrong_format(path)) is not None:
            results[key] = Converted(None, refusal, 0.0)
        else:
            by_family.setdefault(family(path.suffix), []).append((key, path))
    for name, members in by_family.items():
        lane = workdir / f"convert-{name}"
        staged = _stage(members, lane / "in")
        results.update(_convert_lane(name, staged, lane / "out", limits))
    return results


def _wrong_format(path: Path) -> DocumentError | None:
    magic = _MAGIC.get(path.suffix.lower())
    with path.open("rb") as handle:
        head = handle.read(len(magic or b""))
    if magic and head != magic:
        kind = "zip-based Office/OpenDocument" if magic == _ZIP else "RTF" if magic != _OLE else "legacy Office (OLE)"
        return UnsupportedDocument(f"not a {kind} file although it is named '{path.suffix.lower()}' (its first bytes "
                                   "say otherwise); save it in its real format and ingest it again")
    return None


def _stage(members: list[tuple[str, Path]], folder: Path) -> list[tuple[str, Path]]:
    """Inputs under plain numbered names: no two outputs collide, and odd file names reach no command line."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    for number, (key, path) in enumerate(members):
        target = folder / f"{number:05d}{path.suffix.lower()}"
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        staged.append((key, target))
    return staged


def _convert_lane(name: str, staged: list[tuple[str, Path]], out: Path, limits: ConverterLimits) -> dict[str, Converted]:
    """Run one soffice over the remaining files; on a timeout or crash, blame the file in progress and go on
    with the ones after it in a fresh process."""
    results: dict[str, Converted] = {}
    remaining = staged
    while remaining:
        converted, stopped, seconds = _run_soffice(name, [p for _, p in remaining], out, limits)
        in_progress = max(converted, default=-1) + 1  # outputs appear in order: earlier gaps failed to load
        for index, (key, path) in enumerate(remaining):
            if index in converted:
                results[key] = Converted(_output(out, path), None, converted[index])
            elif index < in_progress or stopped is None:
                results[key] = Converted(None, ConversionFailed(
                    f"LibreOffice could not open it as a {_KIND[name]} (damaged, password-protected or another "
                    "format under this extension)"), 0.0)
        if stopped is None or in_progress >= len(remaining):
            return results
        results[remaining[in_progress][0]] = Converted(None, stopped, seconds)
        remaining = remaining[in_progress + 1:]
    return results


_KIND = {"writer": "text document", "html": "web page", "impress": "presentation", "calc": "spreadsheet", "text": "text file"}


def _output(out: Path, staged: Path) -> Path:
    return out / f"{staged.stem}.pdf"


def _complete(pdf: Path) -> bool:
    """A finished PDF ends with %%EOF; one being written does not yet."""
    try:
        with pdf.open("rb") as handle:
            handle.seek(max(0, pdf.stat().st_size - 64))
            return b"%%EOF" in handle.read()
    except OSError:
        return False


def _command(name: str, inputs: list[Path], out: Path, profile: Path, limits: ConverterLimits) -> list[str]:
    target = {"impress": _IMPRESS_PDF, "html": "pdf:writer_pdf_Export"}.get(name, "pdf")
    infilter = [f"--infilter={_IN_FILTERS[name]}"] if name in _IN_FILTERS else []
    launcher = procs.with_parent(signal.SIGKILL, max_bytes=limits.memory_mb << 20)
    return [*launcher, shutil.which(limits.soffice) or limits.soffice, f"-env:UserInstallation={profile.as_uri()}",
            "--headless", "--invisible", "--nologo", "--norestore", "--nolockcheck", "--nodefault", *infilter,
            "--convert-to", target, "--outdir", str(out), *map(str, inputs)]


def _run_soffice(name: str, inputs: list[Path], out: Path, limits: ConverterLimits
                 ) -> tuple[dict[int, float], DocumentError | None, float]:
    """Seconds per converted input (by position), why the process stopped early (None: it ran to the end),
    and the seconds spent since the last output."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lo-profile-") as profile:
        (Path(profile) / "user").mkdir()
        (Path(profile) / "user" / "registrymodifications.xcu").write_text(_PROFILE)
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(_command(name, inputs, out, Path(profile), limits), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**procs.child_env(), "HOME": profile})
            try:
                return _watch(process, inputs, out, limits, lambda: _tail(log))
            finally:
                _kill_group(process)


def _watch(process: subprocess.Popen[bytes], inputs: list[Path], out: Path, limits: ConverterLimits,
           tail: Callable[[], str]) -> tuple[dict[int, float], DocumentError | None, float]:
    converted: dict[int, float] = {}
    mark = time.monotonic()
    while True:
        code = process.poll()
        for index, path in enumerate(inputs):
            if index not in converted and _complete(_output(out, path)):
                now = time.monotonic()
                converted[index], mark = round(now - mark, 3), now
        spent = round(time.monotonic() - mark, 3)
        if code is not None:
            return converted, None if code == 0 or len(converted) == len(inputs) else _crashed(code, limits, tail()), spent
        if spent > limits.timeout_s:
            return converted, ConversionTimeout(f"LibreOffice took more than {limits.timeout_s:g} s on it "
                                                "(PAGELENS_CONVERT_TIMEOUT_S); it was stopped"), spent
        time.sleep(POLL_S)


def _crashed(code: int, limits: ConverterLimits, tail: str) -> ConversionFailed:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    said = f"; it said: {tail}" if tail else ""
    return ConversionFailed(f"LibreOffice {how} on this file (damaged, hostile, or over the {limits.memory_mb} MB "
                            f"memory cap, PAGELENS_CONVERT_MEMORY_MB){said}")


def _tail(log: object) -> str:
    """The converter's last meaningful line (not its Java warning)."""
    log.seek(0)  # type: ignore[attr-defined]
    lines = [ln.strip() for ln in log.read().decode(errors="replace").splitlines()]  # type: ignore[attr-defined]
    lines = [ln for ln in lines if ln and "javaldx" not in ln and not ln.startswith("convert ")]
    return lines[-1][:200] if lines else ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """soffice forks soffice.bin: kill the whole process group, then reap."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
