"""Query API latency over real HTTP on 127.0.0.1: /v1/search and /v1/query at 10k and 100k chunks, then a 60 s load.

What runs is what production runs: gunicorn serving `query_api:create_app()` (sync workers, as the Dockerfile)
against a `milvus-lite server` on 127.0.0.1 (several processes share one store), MiniLM encoding each question
in the API. Each namespace holds the real sample documents (ingested by the pipeline) plus synthetic chunks
up to the target size: text drawn Zipf-like from MiniLM's English vocabulary, random unit text vectors, no
image, a page window each; written in batches with `VectorStore.upsert_chunks` and `upsert_windows` and flushed,
so searches use the HNSW index.
The filled store is kept in --workdir and reused by later runs.

Usage: python bench/api_latency.py [--workdir DIR] [--sizes 10000 100000] [--clients 1 8] [--requests 200]
       [--workers 2] [--load-seconds 60] [--load-clients 20]
Prints tables, the bare store search time at each size beside each endpoint's p50/p95/p99 (with the ratio
endpoint/bare), hybrid retrieval in process with its legs concurrent and one after another, a profile of where
/v1/query spends its time at the largest size, and last a JSON line. `--load-seconds 0` skips the load phase.
Every loop is bounded by a request count and a time limit, and only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import json
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pagelens.settings import Settings  # noqa: E402 (after the path and thread limits are set)

log = logging.getLogger("bench.api_latency")
HOST = "127.0.0.1"
BATCH = 2000  # synthetic chunks per upsert
PHASE_LIMIT_S = 120.0  # no measured phase runs longer, whatever --requests says
REQUEST_TIMEOUT_S = 120.0  # as gunicorn's worker timeout: queueing behind busy workers is latency, not an error
STARTUP_TIMEOUT_S = 300.0
QUESTIONS = [
    "What is the calibration interval of the robot arm?",
    "Which region had the most revenue in 2025?",
    "How many units were shipped in the fourth quarter?",
    "Who must sign the calibration logbook?",
    "How often are gripper pads replaced?",
    "What was the total revenue in 2024?",
    "Where is the new assembly facility?",
    "What did the warehouse inspection find?",
    "How much did revenue grow in Asia-Pacific?",
    "What is the capacity of the new facility?",
    "Which customers drive demand for the collaborative robot arm?",
    "When was the maintenance memo sent?",
]


@dataclass
class Phase:
    """One measured run: latencies of successful requests, failures, and the server's own timings."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    server_ms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        out: dict[str, Any] = {"phase": self.name, "requests": len(lat) + len(self.errors), "errors": len(self.errors),
                               "rps": round((len(lat) + len(self.errors)) / self.seconds, 1) if self.seconds else 0.0}
        for q in (50, 95, 99):
            out[f"p{q}_ms"] = round(percentile(lat, q), 1) if lat else None
        for key, values in self.server_ms.items():
            out[f"server_{key}_p50"] = round(statistics.median(values), 1)
        if self.errors:
            out["first_errors"] = sorted(set(self.errors))[:3]
        return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# -- services ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}; see its log in the workdir")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if check():
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} was not ready within {timeout:g} s")


def port_open(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1):
        return True


@contextlib.contextmanager
def service(args: list[str], log_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, stopped (SIGTERM, then SIGKILL) on exit."""
    with log_path.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def child_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "PAGELENS_DATA_DIR": str(settings.data_dir), "PAGELENS_MILVUS_URI": settings.milvus_uri,
            "PAGELENS_REGISTRY_URL": settings.registry_url, "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


# -- the store ----------------------------------------------------------------------------------------
def vocabulary(settings: Settings) -> list[str]:
    """English words of MiniLM's vocabulary, roughly in frequency order (WordPiece ids follow corpus counts)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(settings.text_model_dir(), local_files_only=True)
    ranked = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return [word for word, _ in ranked if word.isalpha() and word.isascii() and len(word) >= 3]


def synthetic_chunks(namespace: str, start: int, count: int, words: list[str], rng: random.Random) -> list[Any]:
    from pagelens.records import Chunk

    weights = [1.0 / (rank + 20) for rank in range(len(words))]  # Zipf-like: common words dominate
    chunks = []
    for number in range(start, start + count):
        text = synthetic_text(words, weights, rng)
        doc = f"synthetic_{number // 40:05d}.pdf"
        chunks.append(Chunk(id=f"syn{number:012d}", namespace=namespace, doc_id=doc, source_uri=f"bench://{doc}",
                            content_sha256="0" * 64, page=number % 40 // 4 + 1, chunk_no=number % 4,
                            bbox=(56.0, 72.0, 540.0, 300.0), kind="text", text=text, model_version="bench-synthetic"))
    return chunks


def synthetic_text(words: list[str], weights: list[float], rng: random.Random) -> str:
    """About one chunk of prose (pipeline chunks are ~1200 characters) in sentences of 6-25 words."""
    sentences: list[str] = []
    target = rng.randint(700, 1300)
    while sum(len(s) + 1 for s in sentences) < target:
        sentence = " ".join(rng.choices(words, weights, k=rng.randint(6, 25)))
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
    return " ".join(sentences)


def random_unit_vectors(count: int, dim: int, seed: int) -> list[list[float]]:
    import numpy as np

    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.tolist()


def fill_namespace(settings: Settings, namespace: str, size: int, samples: Path) -> dict[str, float]:
    """Real sample chunks through the pipeline, then synthetic chunks up to `size`, then flush; skips what exists."""
    from pagelens.pipeline.stages import ingest
    from pagelens.records import DenseWindow
    from pagelens.settings import TEXT_DIM
    from pagelens.store import VectorStore

    store, timings = VectorStore(settings, namespace), {}
    started = time.perf_counter()
    reports = ingest(str(samples), namespace, settings)
    timings["ingest_samples_s"] = round(time.perf_counter() - started, 1)
    bad = [r.to_dict() for r in reports if r.status not in ("indexed", "skipped")]
    if bad:
        raise RuntimeError(f"sample ingest failed: {bad}")
    have = store.count()
    if have < size:
        words, rng = vocabulary(settings), random.Random(size)
        started = time.perf_counter()
        for start in range(have, size, BATCH):
            count = min(BATCH, size - start)
            chunks = synthetic_chunks(namespace, start, count, words, rng)
            store.upsert_chunks(chunks, random_unit_vectors(count, TEXT_DIM, seed=start), [None] * count,
                                settings.vision_weight)
            # MiniLM's page windows: about one per chunk on the eval corpus (10,023 for 9,332 chunks)
            store.upsert_windows([DenseWindow(id=c.id, chunk=c, text="") for c in chunks],
                                 random_unit_vectors(count, TEXT_DIM, seed=10**9 + start))
            log.info("%s: %d/%d chunks written", namespace, start + count, size)
        timings["write_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    store.flush()
    timings["flush_s"] = round(time.perf_counter() - started, 1)
    timings["chunks"] = store.count()
    return timings


# -- load ---------------------------------------------------------------------------------------------
class Client:
    """POSTs questions to one endpoint of the API with a bearer token; one connection per request (as gunicorn's
    sync workers close each one)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token

    def ask(self, path: str, namespace: str, question: str) -> tuple[float, int, dict[str, Any]]:
        body = json.dumps({"question": question, "namespace": namespace, "mode": "hybrid"})
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        started = time.perf_counter()
        connection = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            decoded = json.loads(payload)
        except ValueError:
            decoded = {}
        return elapsed_ms, response.status, decoded


def run_phase(name: str, client: Client, jobs: Callable[[int], tuple[str, str]], namespace: str, clients: int,
              max_requests: int, max_seconds: float) -> Phase:
    """`clients` threads issue requests (job i -> (path, question)) until `max_requests` are done or time is up."""
    phase, lock, counter = Phase(name), threading.Lock(), iter(range(max_requests))
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            path, question = jobs(index)
            try:
                ms, status, body = client.ask(path, namespace, question)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    phase.errors.append(f"{type(exc).__name__}: {exc}"[:120])
                continue
            with lock:
                if status != 200:
                    phase.errors.append(f"HTTP {status}: {json.dumps(body)[:120]}")
                    continue
                phase.latencies_ms.append(ms)
                for key, value in (body.get("timings") or {}).items():
                    phase.server_ms.setdefault(key, []).append(float(value))

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    phase.seconds = time.perf_counter() - started
    return phase


def one_endpoint(path: str) -> Callable[[int], tuple[str, str]]:
    return lambda i: (path, QUESTIONS[i % len(QUESTIONS)])


def mixed_endpoints(i: int) -> tuple[str, str]:
    return ("/v1/query" if i % 2 else "/v1/search"), QUESTIONS[i % len(QUESTIONS)]


# -- profile ------------------------------------------------------------------------------------------
def profile_query(settings: Settings, namespace: str, rounds: int = 3) -> dict[str, float]:
    """Median ms of each step /v1/query takes, run in this process against the same Milvus server."""
    from pagelens.answer import extractive_answer
    from pagelens.embed import text_encoder
    from pagelens.retrieve import fuse_by_page
    from pagelens.store import VectorStore

    encoder, store = text_encoder(settings), VectorStore(settings, namespace)
    encoder.encode(["warm-up"])
    steps: dict[str, list[float]] = {}

    def timed(step: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        steps.setdefault(step, []).append((time.perf_counter() - started) * 1000)
        return result

    for _ in range(rounds):
        for question in QUESTIONS:
            vector = timed("minilm_query_embedding", lambda q=question: encoder.encode([q])[0])
            sparse = timed("milvus_bm25_search", lambda q=question: store.search("sparse", q, settings.candidates))
            dense = timed("milvus_dense_search", lambda v=vector: store.search("text_vec", v, settings.candidates))
            hits = timed("fusion", lambda s=sparse, d=dense: fuse_by_page([(1.0, s), (1.0, d)]))
            timed("extractive_answer", lambda q=question, h=hits: extractive_answer(q, h[:settings.api_default_k],
                                                                                      settings))
    return {step: round(statistics.median(values), 1) for step, values in steps.items()}


# -- the bare store -------------------------------------------------------------------------------------
def bare_store(settings: Settings, namespace: str, rounds: int = 5) -> dict[str, dict[str, float]]:
    """What Milvus alone takes for a hybrid question, in process against the same server: BM25 alone, dense alone
    (vector encoded beforehand), and both issued at once as the API does; then `retrieve()` whole (encoding and
    fusion included) with the legs concurrent and one after another. p50/p95/p99 ms of each."""
    from pagelens.embed import text_encoder
    from pagelens.retrieve import retrieve
    from pagelens.store import VectorStore

    encoder, store = text_encoder(settings), VectorStore(settings, namespace)
    vectors = {q: encoder.encode([q])[0] for q in QUESTIONS}
    concurrent_legs = settings.model_copy(update={"retrieval_concurrent": True})  # whatever the environment says
    sequential = settings.model_copy(update={"retrieval_concurrent": False})
    samples: dict[str, list[float]] = {}

    def timed(step: str, call: Callable[[], Any]) -> None:
        started = time.perf_counter()
        call()
        samples.setdefault(step, []).append((time.perf_counter() - started) * 1000)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        def both(q: str) -> None:
            dense = pool.submit(store.search, "text_vec", vectors[q], settings.candidates)
            store.search("sparse", q, settings.candidates)
            dense.result()

        for _ in range(rounds):
            for q in QUESTIONS:
                timed("bm25", lambda q=q: store.search("sparse", q, settings.candidates))
                timed("dense", lambda q=q: store.search("text_vec", vectors[q], settings.candidates))
                timed("bare", lambda q=q: both(q))
                timed("retrieve_concurrent", lambda q=q: retrieve(q, namespace, concurrent_legs, mode="hybrid"))
                timed("retrieve_sequential", lambda q=q: retrieve(q, namespace, sequential, mode="hybrid"))
    return {step: {f"p{q}_ms": round(percentile(sorted(v), q), 1) for q in (50, 95, 99)} for step, v in samples.items()}


def ratio_rows(rows: list[dict[str, Any]], bare: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """Each 1-client endpoint phase beside the bare store time at its size, and their ratio at p50/p95/p99."""
    out = []
    for row in rows:
        size = row.get("size")
        if size not in bare or row.get("clients") != 1:
            continue
        floor = bare[size]["bare"]
        out.append({"phase": row["phase"], **{f"{k}": row[k] for k in ("p50_ms", "p95_ms", "p99_ms")},
                    **{f"bare_{k}": floor[k] for k in ("p50_ms", "p95_ms", "p99_ms")},
                    **{f"ratio_{k[:3]}": round(row[k] / floor[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms")
                       if row.get(k) and floor.get(k)}})
    return out


# -- main -----------------------------------------------------------------------------------------------
def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def size_label(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = ["phase", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms", "server_retrieval_ms_p50",
               "server_generation_ms_p50"]
    sys.stdout.write(" ".join(f"{c[:24]:>24}" if i else f"{c:<34}" for i, c in enumerate(columns)) + "\n")
    for row in rows:
        cells = [str(row.get(c, "")) if row.get(c) is not None else "-" for c in columns]
        sys.stdout.write(" ".join(f"{c:>24}" if i else f"{c:<34}" for i, c in enumerate(cells)) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep the filled store here and reuse it (default: a temp dir)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=200, help="requests per measured phase (at most)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (the Dockerfile runs 2)")
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--load-clients", type=int, default=20)
    parser.add_argument("--bare-rounds", type=int, default=3, help="rounds of the questions for the in-process timings")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pagelens-api-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> int:
    from pagelens.samples import write_samples
    from pagelens.tokens import create_token

    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": load_average(), "workers": args.workers}
    milvus_port, api_port = free_port(), free_port()
    settings = Settings(data_dir=workdir / "data", milvus_uri=f"http://{HOST}:{milvus_port}",
                        registry_url=f"sqlite:///{workdir / 'registry.db'}")
    samples = workdir / "samples"
    if not samples.is_dir():
        write_samples(samples)
    env = child_env(settings)
    milvus_cmd = [sys.executable, "-m", "pagelens.liteserver", "--data-dir", str(workdir / "milvus"), "--host", HOST,
                  "--port", str(milvus_port)]  # what `pagelens store serve` runs (Milvus's keepalive policy)
    with service(milvus_cmd, workdir / "milvus.log", env) as milvus:
        wait_for(lambda: port_open(milvus_port), "milvus-lite server", milvus, STARTUP_TIMEOUT_S)
        namespaces = {size: f"bench{size_label(size)}" for size in args.sizes}
        result["fill"] = {ns: fill_namespace(settings, ns, size, samples) for size, ns in namespaces.items()}
        token = create_token(settings, list(namespaces.values()), "latency benchmark")
        gunicorn_cmd = [venv_bin("gunicorn"), "--workers", str(args.workers), "--bind", f"{HOST}:{api_port}",
                        "--timeout", "120", "--chdir", str(REPO), "query_api:create_app()"]
        with service(gunicorn_cmd, workdir / "gunicorn.log", env) as api:
            wait_until_every_worker_ready(api_port, api, args.workers)
            client = Client(api_port, token)
            rows = measure(args, client, namespaces)
        result["phases"] = rows
        result["bare_store_ms"] = {size: bare_store(settings, ns, args.bare_rounds) for size, ns in namespaces.items()}
        result["ratios"] = ratio_rows(rows, result["bare_store_ms"])
        result["profile_ms"] = profile_query(settings, namespaces[max(args.sizes)], args.bare_rounds)
    result["load_after"] = load_average()
    print_table(rows)
    for size, steps in result["bare_store_ms"].items():
        sys.stdout.write(f"\nstore alone at {size} chunks (ms): {json.dumps(steps)}")
    sys.stdout.write("\n\nendpoint / bare store (1 client):\n")
    for row in result["ratios"]:
        sys.stdout.write(f"  {json.dumps(row)}\n")
    sys.stdout.write(f"\n/v1/query steps at {max(args.sizes)} chunks (median ms, in-process against the same Milvus):"
                     f"\n  {json.dumps(result['profile_ms'])}\nload average before/after: {result['load_before']} / "
                     f"{result['load_after']} on {result['cpus']} CPUs\n")
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def wait_until_every_worker_ready(port: int, api: subprocess.Popen[bytes], workers: int) -> None:
    """/readyz answers from whichever worker is free: ask until several answers in a row are ready."""
    streak = [0]

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=5) as response:
                streak[0] = streak[0] + 1 if response.status == 200 else 0
        except urllib.error.HTTPError:
            streak[0] = 0
        return streak[0] >= 4 * workers

    wait_for(ready, "gunicorn (query API)", api, STARTUP_TIMEOUT_S)


def measure(args: argparse.Namespace, client: Client, namespaces: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    for size, namespace in namespaces.items():
        run_phase("warm-up", client, mixed_endpoints, namespace, args.workers, 4 * args.workers, PHASE_LIMIT_S)
        for path in ("/v1/search", "/v1/query"):
            for clients in args.clients:
                phase = run_phase(f"{path} {size_label(size)} chunks, {clients} client(s)", client, one_endpoint(path),
                                  namespace, clients, args.requests, PHASE_LIMIT_S)
                rows.append({**phase.summary(), "size": size, "clients": clients, "load": load_average()})
                log.info("%s", rows[-1])
    if args.load_seconds <= 0:
        return rows
    largest = namespaces[max(namespaces)]
    phase = run_phase(f"load: {args.load_clients} clients, {args.load_seconds:g} s, search+query", client,
                      mixed_endpoints, largest, args.load_clients, 10**6, args.load_seconds)
    rows.append({**phase.summary(), "load": load_average()})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
