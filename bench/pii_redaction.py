"""Synthetic PII benchmark of `pagelens.redact`: recall and precision per kind over generated strings.

Usage: python bench/pii_redaction.py [--n 500] [--seed 7] [--json]

Generates --n strings of each kind (EMAIL, PHONE, SSN, CARD, IBAN) in varied real-world formats, each inside
a sentence, and --n look-alikes that are not personal data (ISBNs, EANs, order and invoice numbers, dates,
amounts, IPs, versions, tracking numbers, rows of years...). A PII string counts as found when one span of
its kind covers it entirely; every other span (on a look-alike, on the sentence around a PII string, or of
the wrong kind) is a false positive of its label. Goal: recall >= 0.99 and precision >= 0.95 for every kind.
Prints a table and, last, a JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from pagelens.redact import pii_spans  # noqa: E402

KINDS = ("EMAIL", "PHONE", "SSN", "CARD", "IBAN")
RECALL_GOAL, PRECISION_GOAL = 0.99, 0.95
CONTEXTS = ("Contact: {} (office).", "please reach {} before Friday", "{}", "Ref {}; see page 4.", "({})",
            "Noted on 2024-03-15: {}, confirmed.", "<{}>", "value={} ok", "Line 3 | {} | approved")
FIRST = ("jane", "john", "maria", "li", "oluwaseun", "zoë", "anne-marie", "o.connor", "k", "dmitri")
LAST = ("doe", "smith", "garcía", "nguyen", "muller", "okafor", "van-der-berg", "x", "lee", "ivanova")
DOMAINS = ("example.com", "acme.co.uk", "mail.example.org", "uni-bonn.de", "corp.io", "a.b.c.example.net",
           "EXAMPLE.COM", "post.museum", "x1.dev")


@dataclass
class Sample:
    text: str
    kind: str  # "" for a look-alike
    start: int = 0
    end: int = 0


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST).replace("ë", "e"), rng.choice(LAST).replace("í", "i")
    local = rng.choice([f"{first}.{last}", f"{first}_{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}",
                        f"{first}+{rng.choice(['ir', 'hr', 'news'])}", f"{last}.{first}-{rng.randint(1, 9)}"])
    return f"{local}@{rng.choice(DOMAINS)}".upper() if rng.random() < 0.05 else f"{local}@{rng.choice(DOMAINS)}"


def phone(rng: random.Random) -> str:
    area, exch, line = f"{rng.randint(2, 9)}{_digits(rng, 2)}", f"{rng.randint(2, 9)}{_digits(rng, 2)}", _digits(rng, 4)
    formats: list[Callable[[], str]] = [
        lambda: f"({area}) {exch}-{line}", lambda: f"{area}-{exch}-{line}", lambda: f"{area}.{exch}.{line}",
        lambda: f"{area} {exch} {line}", lambda: f"+1 {area} {exch} {line}", lambda: f"+1-{area}-{exch}-{line}",
        lambda: f"1-{area}-{exch}-{line}", lambda: f"+1 ({area}) {exch}-{line}", lambda: f"+1{area}{exch}{line}",
        lambda: f"{area}-{exch}-{line} ext. {rng.randint(1, 999)}",
        lambda: f"+49 {rng.choice(['30', '89', '40', '221'])} {_digits(rng, rng.randint(6, 8))}",
        lambda: f"+49 (0){rng.choice(['30', '89'])} {_digits(rng, 7)}",
        lambda: f"0049 {rng.choice(['30', '89'])} {_digits(rng, 6)}",
        lambda: f"+49-{rng.choice(['30', '69'])}-{_digits(rng, 7)}",
        lambda: f"+44 7{_digits(rng, 3)} {_digits(rng, 6)}", lambda: f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}",
        lambda: f"+44 (0)20 {_digits(rng, 4)} {_digits(rng, 4)}",
        lambda: "+33 " + " ".join([str(rng.randint(1, 9))] + [_digits(rng, 2) for _ in range(4)]),
        lambda: f"+41 44 {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}",
        lambda: f"+81 3-{_digits(rng, 4)}-{_digits(rng, 4)}", lambda: f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}",
        lambda: f"+61 2 {_digits(rng, 4)} {_digits(rng, 4)}", lambda: f"+55 11 9{_digits(rng, 4)}-{_digits(rng, 4)}",
        lambda: f"+86 10 {_digits(rng, 4)} {_digits(rng, 4)}", lambda: f"+4930{_digits(rng, 6)}",
        lambda: f"+31.20.{_digits(rng, 3)}.{_digits(rng, 4)}",
    ]
    return rng.choice(formats)()


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    sep = rng.choice(["-", "-", " ", "."])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    network = rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover", "visa19"])
    prefix, length = {"visa": ("4", 16), "mc": (str(rng.randint(51, 55)), 16), "mc2": (str(rng.randint(2221, 2720)), 16),
                      "amex": (rng.choice(["34", "37"]), 15), "discover": (rng.choice(["6011", "65"]), 16),
                      "visa19": ("4", 19)}[network]
    number = _luhn_complete(prefix, length, rng)
    sep = rng.choice(["", " ", "-", "."])
    if not sep:
        return number
    if length == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i:i + 4] for i in range(0, length, 4))


IBAN_LAYOUTS = {"DE": "n18", "GB": "a4n14", "FR": "n23", "NL": "a4n10", "ES": "n20", "IT": "a1n22", "CH": "n17",
                "BE": "n12", "NO": "n11", "AT": "n16", "PL": "n24"}


def iban(rng: random.Random) -> str:
    country = rng.choice(list(IBAN_LAYOUTS))
    layout = IBAN_LAYOUTS[country]
    letters = int(layout[1:layout.index("n")]) if layout.startswith("a") else 0
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters)) + _digits(rng, int(layout.split("n")[1]))
    check = 98 - int("".join(str(int(ch, 36)) for ch in bban + country + "00")) % 97
    number = f"{country}{check:02d}{bban}"
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4)) if rng.random() < 0.5 else number


def _isbn13(rng: random.Random) -> str:
    body = rng.choice(["978", "979"]) + _digits(rng, 9)
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return f"{body[:3]}-{body[3]}-{body[4:7]}-{body[7:12]}-{check}" if rng.random() < 0.5 else body + str(check)


def _ean13(rng: random.Random) -> str:
    body = rng.choice(["40", "50", "54", "76", "87"]) + _digits(rng, 10)
    return body + str((10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10)


def lookalike(rng: random.Random) -> str:
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    formats: list[Callable[[], str]] = [
        lambda: f"ISBN {_isbn13(rng)}", lambda: f"ISBN 0-{_digits(rng, 3)}-{_digits(rng, 5)}-{rng.randint(0, 9)}",
        lambda: f"EAN {_ean13(rng)}", lambda: f"Order ORD-{y}-{_digits(rng, 7)}", lambda: f"PO {_digits(rng, 10)}",
        lambda: f"Invoice INV/{y}/{_digits(rng, 5)}", lambda: f"{y}-{m:02d}-{d:02d}", lambda: f"{m:02d}/{d:02d}/{y}",
        lambda: f"{d:02d}.{m:02d}.{y}", lambda: f"{d} March {y}, 10:{rng.randint(10, 59)} a.m.",
        lambda: f"${rng.randint(1, 999)},{_digits(rng, 3)},{_digits(rng, 3)}.{_digits(rng, 2)}",
        lambda: f"EUR {rng.randint(1, 999)}.{_digits(rng, 3)}.{_digits(rng, 3)},{_digits(rng, 2)}",
        lambda: f"{rng.randint(1, 999)} {_digits(rng, 3)} {_digits(rng, 3)},00 EUR",
        lambda: ".".join(str(rng.randint(0, 255)) for _ in range(4)),
        lambda: f"v{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}",
        lambda: " ".join(str(y + i) for i in range(4)), lambda: f"{rng.randint(1, 99)}.{rng.randint(0, 9)} %",
        lambda: f"CA {rng.randint(90001, 96162)}-{_digits(rng, 4)}",
        lambda: f"Tracking 1Z{_digits(rng, 3)}AA1{_digits(rng, 10)}",
        lambda: f"SKU {_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 3)}",
        lambda: f"Serial SN {_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
        lambda: f"{rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}",
        lambda: f"pages {rng.randint(1, 300)}-{rng.randint(301, 600)}", lambda: f"ISIN US{_digits(rng, 10)}",
        lambda: f"CUSIP {_digits(rng, 9)}", lambda: f"Change +{rng.randint(1, 9)} {_digits(rng, 3)} {_digits(rng, 3)}",
        lambda: f"Section {rng.randint(1, 9)}.{rng.randint(1, 9)}.{rng.randint(1, 9)}",
        lambda: f"Revenue 80,{_digits(rng, 3)} 91,{_digits(rng, 3)} 1,{_digits(rng, 3)},{_digits(rng, 3)}",
        lambda: f"Patent US {rng.randint(5, 11)},{_digits(rng, 3)},{_digits(rng, 3)} B2",
        lambda: f"ISO {rng.randint(9000, 27001)}:{y}", lambda: f"Batch AB{_digits(rng, 2)} CDEF GHIJ KLMN",
        lambda: f"Ticket #{_digits(rng, 8)}", lambda: f"Case {rng.randint(100, 999)}-{_digits(rng, 2)}-{y}",
        lambda: f"Flight LH {_digits(rng, 4)} at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        lambda: f"{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 3)} units",
    ]
    return rng.choice(formats)()


GENERATORS: dict[str, Callable[[random.Random], str]] = {"EMAIL": email, "PHONE": phone, "SSN": ssn, "CARD": card,
                                                         "IBAN": iban}


def samples(n: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for kind in (*KINDS, ""):
        for _ in range(n):
            value = GENERATORS[kind](rng) if kind else lookalike(rng)
            before, _, after = rng.choice(CONTEXTS).partition("{}")
            out.append(Sample(before + value + after, kind, len(before), len(before) + len(value)))
    return out


def evaluate(n: int = 500, seed: int = 7) -> dict[str, dict[str, float]]:
    """{kind: {"n", "recall", "precision", "found", "predicted", "false_positives"}} over `samples(n, seed)`."""
    found = dict.fromkeys(KINDS, 0)
    predicted = dict.fromkeys(KINDS, 0)
    true_positive = dict.fromkeys(KINDS, 0)
    missed: dict[str, list[str]] = {k: [] for k in KINDS}
    false: dict[str, list[str]] = {k: [] for k in KINDS}
    for sample in samples(n, seed):
        hit = False
        for start, end, label in pii_spans(sample.text):
            predicted[label] += 1
            if label == sample.kind and start <= sample.start and end >= sample.end and not hit:
                hit, true_positive[label] = True, true_positive[label] + 1
            else:
                false[label].append(sample.text)
        if sample.kind:
            found[sample.kind] += hit
            if not hit:
                missed[sample.kind].append(sample.text)
    return {k: {"n": n, "recall": found[k] / n, "precision": true_positive[k] / max(predicted[k], 1),
                "found": found[k], "predicted": predicted[k], "false_positives": predicted[k] - true_positive[k],
                "missed_examples": missed[k][:3], "false_positive_examples": false[k][:3]} for k in KINDS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="strings per kind, and look-alikes")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = evaluate(args.n, args.seed)
    print(f"{'kind':6} {'n':>5} {'recall':>7} {'precision':>9} {'missed':>6} {'false+':>6}")
    for kind, row in result.items():
        print(f"{kind:6} {row['n']:5} {row['recall']:7.3f} {row['precision']:9.3f} "
              f"{row['n'] - row['found']:6} {row['false_positives']:6}")
        for text in row["missed_examples"] + row["false_positive_examples"]:
            print(f"       e.g. {text!r}")
    print(json.dumps({k: {m: round(v, 4) for m, v in row.items() if isinstance(v, float)} for k, row in result.items()}))
    ok = all(r["recall"] >= RECALL_GOAL and r["precision"] >= PRECISION_GOAL for r in result.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
