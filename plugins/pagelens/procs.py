"""Child processes that end with their parent: parse workers, their Tesseract runs, the Lite server."""

from __future__ import annotations

import contextlib
import ctypes
import functools
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
        libc().prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the call: nobody will send it
        os.kill(os.getpid(), sig)


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, loaded once: call it in the parent before forking a child that uses it in preexec_fn,
    where loading a library could deadlock on a lock another thread held at fork time."""
    return ctypes.CDLL(None, use_errno=True)


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
