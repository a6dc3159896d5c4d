"""Milvus Lite as a server on 127.0.0.1, so several processes (Airflow tasks, the query API, the CLI) share one store.

A Lite file is locked by the one process that opens it; a second process fails. `milvus-lite server` opens it
once and serves the Milvus API; every process then connects with `PAGELENS_MILVUS_URI=http://127.0.0.1:<port>`.
It binds 127.0.0.1 only (its own default is every interface, without authentication).

The server runs as `python -m pagelens.liteserver` rather than `milvus-lite server`: the same MilvusLite engine and
servicer, with a gRPC keepalive policy like Milvus's own (client pings every 5 s at least are fine, also between
calls). gRPC's default policy answers a third early ping with GOAWAY "too_many_pings", and pymilvus pings every
10 s, so a client idle on its channel failed its next call once with UNAVAILABLE.
"""

from __future__ import annotations

import argparse
import atexit
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pagelens import procs
from pagelens.errors import StoreUnavailable
from pagelens.settings import Settings

DEFAULT_PORT = 19530
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0  # the server drains requests for up to 5 s on SIGINT, then closes its data


def server_uri(port: int) -> str:
    return f"http://{HOST}:{port}"


def lite_data_dir(settings: Settings) -> Path:
    """The Lite data the settings point at (what `pagelens store serve` serves)."""
    if not settings.is_lite:
        raise ValueError(f"PAGELENS_MILVUS_URI is already a server ({settings.milvus_uri}); unset it to serve the "
                         f"embedded store under {settings.data_dir}")
    return Path(settings.milvus_uri).resolve()


def start(data_dir: Path, port: int = DEFAULT_PORT, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `milvus-lite server` on the data dir in the background; its output goes to `log` (else inherited)."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    command = [*procs.with_parent(signal.SIGINT), sys.executable, "-m", "pagelens.liteserver", "--data-dir",
               str(data_dir), "--host", HOST, "--port", str(port)]
    output = open(log, "ab") if log else None  # the child writes to its own copy of the descriptor
    try:
        # its own session: a Ctrl-C reaches only us, and stop() then sends the one SIGINT it shuts down on;
        # if we die without stopping it (SIGKILL), the kernel sends that SIGINT, so the lock is never orphaned
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT if output else None,
                                start_new_session=True, env=procs.child_env())
    finally:
        if output:
            output.close()


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = READY_TIMEOUT_S,
               log: Path | None = None) -> str:
    """Wait until the server accepts connections; returns its URI. Raises StoreUnavailable if it exits or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StoreUnavailable(f"milvus-lite server exited with code {process.returncode} before serving"
                                   f"{_tail(log)} (port {port} taken? data dir locked by another process?)")
        try:
            socket.create_connection((HOST, port), timeout=1.0).close()
            return server_uri(port)
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise StoreUnavailable(f"milvus-lite server did not listen on {HOST}:{port} within {timeout:.0f} s{_tail(log)}")


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop like Ctrl-C (the server then closes its data cleanly); kill it if it does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


# Milvus (Go) enforces MinTime 5 s and PermitWithoutStream; pymilvus pings every 10 s, idle channels included.
KEEPALIVE_POLICY = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),  # 0: never GOAWAY for pings
]
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # as Milvus standalone (and milvus-lite's own server)
WORKERS = 10


def build_server(db: object) -> Any:
    """A gRPC server for the Lite engine `db` with Milvus's message limits and keepalive policy (not yet bound)."""
    from concurrent import futures

    import grpc
    from milvus_lite.adapter.grpc.servicer import MilvusServicer
    from pymilvus.grpc_gen import milvus_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS), options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        *KEEPALIVE_POLICY])
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(db), server)
    return server


def serve(data_dir: Path, host: str = HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the Lite data dir on host:port until SIGINT (then drain for 5 s and close the data cleanly)."""
    from milvus_lite.db import MilvusLite

    db = MilvusLite(str(data_dir))
    server = build_server(db)
    try:
        if not server.add_insecure_port(f"{host}:{port}"):
            raise SystemExit(f"cannot listen on {host}:{port}: is the port taken?")
        server.start()
        sys.stdout.write(f"Milvus Lite serving {data_dir} on {host}:{port}\n")  # first line of `pagelens store serve`
        sys.stdout.flush()
        server.wait_for_termination()
    except KeyboardInterrupt:
        sys.stdout.write("Shutting down...\n")
    finally:
        server.stop(grace=5).wait()
        db.close()


_EMBEDDED: dict[str, tuple[Any, Any, str]] = {}  # resolved data dir -> (server, engine, uri), this process's
_EMBEDDED_LOCK = threading.Lock()


def embedded_uri(data_dir: str) -> str:
    """The embedded store of this process: the Lite file served in a thread on a free loopback port.

    pymilvus would start milvus-lite's own in-process server for a `.db` path, which keeps gRPC's default
    keepalive policy: after an idle spell (a long OCR between two upserts) its GOAWAY "too_many_pings" fails the
    next call once. This one has the policy `pagelens store serve` has. A second process opening the same file
    gets milvus-lite's DataDirLockedError.
    """
    from milvus_lite.db import MilvusLite

    key = str(Path(data_dir).resolve())
    with _EMBEDDED_LOCK:
        if key not in _EMBEDDED:
            db = MilvusLite(key)
            server = build_server(db)
            port = server.add_insecure_port(f"{HOST}:0")
            server.start()
            _EMBEDDED[key] = (server, db, server_uri(port))
    return _EMBEDDED[key][2]


def release_embedded(data_dir: str | None = None) -> None:
    """Stop the embedded store of `data_dir` (all of them: None) so another process may open the file."""
    with _EMBEDDED_LOCK:
        keys = list(_EMBEDDED) if data_dir is None else [str(Path(data_dir).resolve())]
        for key in keys:
            if key in _EMBEDDED:
                server, db, _uri = _EMBEDDED.pop(key)
                server.stop(grace=None).wait()
                db.close()


atexit.register(release_embedded)  # the engine flushes and unlocks its file on close


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pagelens.liteserver", description=serve.__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(args.data_dir, args.host, args.port)


def _tail(log: Path | None, lines: int = 5) -> str:
    if not log or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return ": " + " | ".join(text) if text else ""


if __name__ == "__main__":
    main()
