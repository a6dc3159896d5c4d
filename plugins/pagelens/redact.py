"""PII scrubbing of text before it is embedded or stored, and face blurring of page/figure images."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from pagelens.records import Page

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card_ok(match: str) -> bool:
    """Luhn alone passes 1 in 10 digit runs; the network prefix keeps rows of years (2019 2020 ...) out."""
    digits = re.sub(r"\D", "", match)
    network = digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720
    return 13 <= len(digits) <= 19 and network and _luhn_ok(digits)


def _iban_ok(match: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, remainder mod 97 is 1."""
    iban = match.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    return int("".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])) % 97 == 1


def _phone_ok(match: str) -> bool:
    """International numbers carry 8-15 digits; `+1 234 567 890` is a signed figure, not a phone."""
    if re.fullmatch(r"\+\d{1,3}(?: \d{3})+", match):
        return False
    digits = sum(ch.isdigit() for ch in match) - (2 if match.startswith("00") else 0)
    return 8 <= digits <= 15


# North American numbers: (415) 555-0134, 415-555-0134, 415.555.0134, and spaced 415 555 0134 (area code and
# exchange then start 2-9, so columns of figures such as `100 200 3000` stay); +1 or 1- in front, extensions.
_US_PHONE = (r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4}"
             r"|[2-9]\d{2} [2-9]\d{2} \d{4})(?: ?(?:x|ext\.?) ?\d{1,5})?")
# International: +CC or 00CC, an optional (0) or (area) group, then groups of digits split by spaces, dots or
# dashes (+49 30 901820, +44 7911 123456, 0049 (0)30 901820: after 00 a space, so `001.00` stays a figure); E.164
# written solid (+14155550134).
_INTL_PHONE = (r"(?:\+[1-9]\d{0,2}|00[1-9]\d{0,2}(?= ))(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,8})?(?:[ .-]\d{1,8}){1,6}"
               r"(?: ?(?:x|ext\.?) ?\d{1,5})?"
               r"|\+[1-9]\d{7,14}")

# Applied in order: IBANs and cards before SSNs and phones so a long number is never half-eaten as a phone.
_RULES: tuple[tuple[str, re.Pattern[str], Callable[[str], bool] | None], ...] = (
    # a space either side of the @ too: text layers often space out its wide glyph (`jane.doe @example.com`)
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+-]+ ?@ ?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None),
    (
        "IBAN",
        re.compile(r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b"),
        _iban_ok,
    ),
    (
        "CARD",  # solid, or in groups split by spaces, dashes or dots; Luhn and the network prefix decide
        re.compile(
            r"(?<![\w.,-])(?:\d{13,19}|\d{4}([ .-])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?|\d{4}([ .-])\d{6}\2\d{4,5})"
            r"(?![\w-]|[.,]\d)"
        ),
        _card_ok,
    ),
    ("SSN", re.compile(r"(?<![\w.,-])(?!000|666|9)\d{3}([- .])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-]|[.,]\d)"), None),
    ("PHONE", re.compile(rf"(?<![\w.,+-])(?:{_US_PHONE}(?![\w-]|[.]\d)|{_INTL_PHONE}(?![\w-]|[.,]\d))"), _phone_ok),
)
FILLER = "\x00"  # stands in for a found span while later rules run: no rule matches it, no boundary differs


def _valid_prefix(found: str, valid: Callable[[str], bool] | None) -> str:
    """Greedy groups can swallow what follows (a CVV, `EUR`), so a failed match retries shorter at separators."""
    while valid is not None and not valid(found):
        cut = max(found.rfind(" "), found.rfind("-"), found.rfind("."))
        if cut <= 0:
            return ""
        found = found[:cut]
    return found


def pii_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, label) of every email, phone, SSN, card number and IBAN in `text`, in text order.

    Cards and IBANs must pass their checksums and phones must look like phones, so the figures,
    years, ranges and dates of financial tables survive untouched.
    """
    spans: list[tuple[int, int, str]] = []
    for label, pattern, valid in _RULES:

        def mask(match: re.Match[str], label: str = label, valid: Callable[[str], bool] | None = valid) -> str:
            found = _valid_prefix(match.group(), valid)
            if not found:
                return match.group()
            spans.append((match.start(), match.start() + len(found), label))
            return FILLER * len(found) + match.group()[len(found):]

        text = pattern.sub(mask, text)
    return sorted(spans)


def redact_text(text: str) -> str:
    """Replace emails, phones, SSNs, card numbers and IBANs with typed placeholders like `[EMAIL]`."""
    out, at = [], 0
    for start, end, label in pii_spans(text):
        out += [text[at:start], f"[{label}]"]
        at = end
    return "".join(out) + text[at:]


def redacted_words(words: Sequence[str], glued: Sequence[bool] = ()) -> list[bool]:
    """Which of a page's words (in reading order) are part of personal data: a phone split over three words
    marks all three. `glued[i]` says word i touches word i-1 (pdfminer splits `jane.doe@example.com` at the
    `@`), so they are read without a space between. Their boxes are what page images black out."""
    starts, parts, at = [], [], 0
    for i, word in enumerate(words):
        if i:
            gap = "" if i < len(glued) and glued[i] else " "
            parts.append(gap)
            at += len(gap)
        starts.append(at)
        parts.append(word)
        at += len(word)
    spans = pii_spans("".join(parts))
    return [any(s < start + len(w) and start < e for s, e, _ in spans) for start, w in zip(starts, words, strict=True)]


def redacted_regions(pages: Sequence[Page]) -> dict[str, list[list[float]]]:
    """{page number: boxes of its words that hold personal data}, for every page (JSON-ready)."""
    regions = {}
    for page in pages:
        words = [word for word, _ in page.words]
        boxes = [box for _, box in page.words]
        glued = [False] + [_glued(words[i - 1], boxes[i - 1], words[i], boxes[i]) for i in range(1, len(words))]
        flags = redacted_words(words, glued)
        merged: list[list[float]] = []  # a run of flagged words on one line is one box, the gaps between included
        for i, box in enumerate(boxes):
            if not flags[i]:
                continue
            if merged and flags[i - 1] and _same_line(boxes[i - 1], box):
                last = merged[-1]
                merged[-1] = [min(last[0], box[0]), min(last[1], box[1]), max(last[2], box[2]), max(last[3], box[3])]
            else:
                merged.append(list(box))
        regions[str(page.number)] = merged
    return regions


def _same_line(left: Sequence[float], right: Sequence[float]) -> bool:
    height = max(left[3] - left[1], right[3] - right[1], 1e-6)
    return abs(left[1] - right[1]) < height / 2 and right[0] >= left[0]


def _glued(left_word: str, left: Sequence[float], right_word: str, right: Sequence[float]) -> bool:
    """One token split in two: on the same line with a gap far narrower than a space (a fifth of the line
    height), or up to a line height around an `@` (its wide side bearing makes pdfminer split emails there)."""
    height = max(left[3] - left[1], right[3] - right[1], 1e-6)
    gap = right[0] - left[2]
    at_sign = left_word.endswith("@") or right_word.startswith("@")
    return _same_line(left, right) and -height / 5 <= gap < (height if at_sign else height / 5)


def redact_name(name: str) -> str:
    """A document name as it may be shown: personal data in its path segments replaced, the extension kept
    and a short hash of the real name added, so two redacted names never collide. Clean names are unchanged."""
    *folders, leaf = name.split("/")
    stem, dot, suffix = leaf.rpartition(".")
    if not dot or not stem or len(suffix) > 5:
        stem, dot, suffix = leaf, "", ""
    shown = [redact_text(s) for s in folders] + [redact_text(stem)]
    if shown == [*folders, stem]:
        return name
    tag = hashlib.sha256(name.encode()).hexdigest()[:8]
    return "/".join([*shown[:-1], f"{shown[-1]}~{tag}{dot}{suffix}"])


_CASCADE = "haarcascade_frontalface_default.xml"
_MAX_DETECT_SIDE = 2000  # bounds Haar time on big scans; faces under ~24 px at this scale go undetected


@functools.lru_cache(maxsize=1)
def _cascade() -> Any:
    """Load OpenCV's frontal-face Haar cascade once; fail loudly rather than skip blurring silently."""
    import cv2

    classifier = getattr(cv2, "CascadeClassifier", None) or getattr(
        getattr(cv2, "xobjdetect", None), "CascadeClassifier", None
    )
    package_dir = Path(cv2.__file__).parent
    data_dir = Path(getattr(getattr(cv2, "data", None), "haarcascades", package_dir))
    xml = next((p for p in [data_dir / _CASCADE, *package_dir.rglob(_CASCADE)] if p.is_file()), None)
    if classifier is None or xml is None:
        raise RuntimeError(
            f"face blurring needs cv2.CascadeClassifier and {_CASCADE}; OpenCV {cv2.__version__} has "
            f"{'no' if classifier is None else 'a'} CascadeClassifier and {'no' if xml is None else 'the'} "
            "cascade file (OpenCV 5 moved both to contrib): install opencv-python-headless<5"
        )
    cascade = classifier(str(xml))
    if cascade.empty():
        raise RuntimeError(f"could not load the Haar cascade at {xml}")
    return cascade


def _face_boxes(gray: Any, detector: Any) -> list[Box]:
    """Detect on a copy no longer than _MAX_DETECT_SIDE and scale the boxes back to full size."""
    import cv2

    scale = min(1.0, _MAX_DETECT_SIDE / max(gray.shape[:2]))
    small = gray
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    found = detector.detectMultiScale(cv2.equalizeHist(small), scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    return [tuple(round(v / scale) for v in box) for box in found]  # type: ignore[misc]


def _blur_boxes(image: Image.Image, boxes: Sequence[Box]) -> Image.Image:
    """Return an RGB copy with each box, padded by 10%, blurred past recognition."""
    import cv2
    import numpy as np
    from PIL import Image

    pixels = np.array(image.convert("RGB"))
    height, width = pixels.shape[:2]
    for x, y, w, h in boxes:
        pad_x, pad_y = round(w * 0.1), round(h * 0.1)
        x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
        x1, y1 = min(width, x + w + pad_x), min(height, y + h + pad_y)
        if x1 <= x0 or y1 <= y0:
            continue
        kernel = (min(x1 - x0, y1 - y0) // 2) * 2 + 1  # about the face's size: features are gone, not softened
        pixels[y0:y1, x0:x1] = cv2.GaussianBlur(pixels[y0:y1, x0:x1], (kernel, kernel), 0)
    return Image.fromarray(pixels)


def blur_faces(image: Image.Image) -> Image.Image:
    """Return a new RGB image with every frontal face blurred; the input is never modified."""
    import cv2
    import numpy as np

    rgb = image.convert("RGB")  # always a copy, even when already RGB
    boxes = _face_boxes(cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2GRAY), _cascade())
    return _blur_boxes(rgb, boxes) if boxes else rgb
