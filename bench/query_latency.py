"""`/v1/query` and `/v1/search` latency over the eval corpus: the real app in process, the real index and models.

Usage: python bench/query_latency.py QUESTIONS... --docs DIR [--docs DIR] [--rounds 2]

Uses the index `pagelens eval` built for those folders (run that first; nothing is ingested here). Each
question is asked `rounds` times through the Flask test client with auth off; the first round warms
caches and is not counted. Prints p50/p95 per endpoint and the answer step's share, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    from pagelens.evaluate import eval_namespace, load_questions
    from pagelens.settings import get_settings
    from query_api import create_app

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("questions", nargs="+", type=Path)
    parser.add_argument("--docs", action="append", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    settings = get_settings().model_copy(update={"api_auth": False, "api_warm_on_start": False})
    client = create_app(settings).test_client()
    namespace = eval_namespace(args.docs)
    questions = [q["question"] for path in args.questions for q in load_questions(path)]
    timings: dict[str, list[float]] = {"search": [], "query": [], "answer": []}
    for round_no in range(args.rounds):
        for question in questions:
            for endpoint in ("search", "query"):
                start = time.perf_counter()
                response = client.post(f"/v1/{endpoint}", json={"question": question, "namespace": namespace})
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    raise SystemExit(f"{endpoint}: HTTP {response.status_code} {response.get_data(as_text=True)[:300]}")
                if round_no == 0:
                    continue
                timings[endpoint].append(elapsed * 1000)
                if endpoint == "query":
                    timings["answer"].append(float(response.get_json()["timings"].get("generation_ms", 0.0)))
    result = {name: {"p50_ms": round(statistics.median(v), 1), "p95_ms": round(percentile(v, 0.95), 1), "n": len(v)}
              for name, v in timings.items()}
    for name, row in result.items():
        print(f"{name:7} p50 {row['p50_ms']:7.1f} ms   p95 {row['p95_ms']:7.1f} ms   ({row['n']} requests)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
