"""Child processes that end with their parent: parse workers, their Tesseract runs, the Lite server."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when its parent (`parent_pid`) dies, even by SIGKILL
    (Linux; elsewhere a no-op).

    The kernel ties this to the parent *thread*: start such children from a thread that outlives them.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the call: nobody will send it
        os.kill(os.getpid(), sig)


def child_pids(pid: int | None = None) -> list[int]:
    """Direct children of `pid` (default: this process), from /proc; empty where /proc is missing."""
    pid = pid or os.getpid()
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in children.read_text().split()]
    return found


def kill_children(sig: int = signal.SIGKILL) -> None:
    """Send `sig` to every direct child of this process (a worker's running `tesseract`)."""
    for pid in child_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143) in the main thread, so `with` blocks and `finally` clauses run
    (parse workers stopped, a Lite server child stopped) instead of the process vanishing mid-step."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def with_parent(sig: int, max_bytes: int = 0) -> list[str]:
    """A command prefix that runs the command as a child that gets `sig` when this process dies: the child
    sets it on itself and then execs the command (the setting survives exec). Unlike a preexec_fn it lets
    subprocess skip a plain fork, whose atfork handlers upset the gRPC channels a parent may hold.
    `max_bytes` caps the address space of the command and everything it starts (RLIMIT_AS)."""
    limit = [f"--max-bytes={max_bytes}"] if max_bytes else []
    return [sys.executable, "-m", "pagelens.procs", str(os.getpid()), str(int(sig)), *limit, "--"]


def child_env() -> dict[str, str]:
    """This environment, with pagelens importable (under Airflow it is on sys.path only, not installed)."""
    here = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{path}" if path else here}


def _exec_with_parent(argv: list[str]) -> None:
    parent, sig, *rest = argv
    limit = rest.pop(0).removeprefix("--max-bytes=") if rest and rest[0].startswith("--max-bytes=") else ""
    separator, *command = rest or [""]
    if separator != "--" or not command:
        raise SystemExit("usage: python -m pagelens.procs PARENT_PID SIGNAL [--max-bytes=N] -- COMMAND...")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    die_with_parent(int(parent), int(sig))
    os.execv(command[0], command)


if __name__ == "__main__":
    _exec_with_parent(sys.argv[1:])
