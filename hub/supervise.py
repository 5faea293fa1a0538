"""`--processes N`: one command, N copies of a service, so that a host's cores all do work.

A Python process runs its event loop on one core. `hub serve --processes N` and
`hub worker --processes N` fork N copies of the service from one parent before any event loop,
thread or connection exists; the copies of `hub serve` share one listening port through
SO_REUSEPORT (the kernel spreads new connections over them). Each copy is a process like any
other to the rest of the hub: its own heartbeat in the process registry, its own pool, its own
share of the deployment-wide limits.

The parent only supervises: SIGTERM or SIGINT is passed on to every copy (each stops
gracefully, as it would alone), and the parent exits once they all have, with the worst exit
status. A copy that exits on its own (a crash, or a failed start) makes the parent stop the
others and exit non-zero: a service that is not what it was asked to be should not limp on, and
whatever runs the hub (systemd, Kubernetes, Compose) restarts it whole. Should the parent itself
be killed (SIGKILL, the OOM killer), every copy gets SIGTERM from the kernel (Linux's
`PR_SET_PDEATHSIG`) and stops gracefully: no copy outlives its command.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

import structlog

log = structlog.get_logger(__name__)

#: Exit status when a copy ended on its own (it crashed or could not start).
COPY_FAILED = 1
#: prctl(2)'s option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def run_copies(count: int, service: Callable[[], None]) -> int:
    """Run `service` in `count` forked copies until they end (see the module docstring); the
    worst exit status. With `count` 1, run it here and return 0."""
    if count <= 1:
        service()
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    children: dict[int, int] = {}
    parent = os.getpid()
    for number in range(count):
        pid = os.fork()
        if pid == 0:  # the copy
            _stop_with_parent(parent)
            _run_copy(service)
        children[pid] = number
    log.info("copies_started", count=count, pids=sorted(children))
    return _supervise(children)


def _stop_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux); exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(COPY_FAILED)


def _run_copy(service: Callable[[], None]) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    status = 0
    try:
        service()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else COPY_FAILED
    except BaseException:
        log.exception("copy_failed")
        status = COPY_FAILED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


def _supervise(children: dict[int, int]) -> int:
    stopping = False

    def stop(signum: int, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worst = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        del children[pid]
        status = os.waitstatus_to_exitcode(wait_status)
        status = status if status >= 0 else 128 - status  # killed by a signal: 128 + signal
        worst = max(worst, status)
        if not stopping:
            log.error("copy_exited", pid=pid, status=status, left=len(children))
            worst = max(worst, COPY_FAILED)
            stop(signal.SIGTERM)
    return worst
