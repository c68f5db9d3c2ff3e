"""Background servers this project starts (the local predictor, the embedded store): are they running, stop them.

Each server leads its own process group (``start_new_session=True``), so a stop reaches every process it forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

import psutil
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

KILL_WAIT_S = 2.0
POLL_INTERVAL_S = 0.1


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process this user may signal.

    One answer everywhere: an exited process (a zombie, which this reaps if it is our child) and another user's
    process (``kill`` would raise PermissionError: a recycled pid, not a server we started) are not running.
    """
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(psutil.Error, ChildProcessError):
                proc.wait(timeout=0)
            return False
        return os.geteuid() == 0 or os.getuid() in (proc.uids().real, proc.uids().saved)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def has_exited(proc: psutil.Process) -> bool:
    """Whether every thread of ``proc`` is gone, so its ports and sockets are released.

    A thread-group leader turns zombie while other threads may still hold listening sockets, so a zombie counts as
    exited only once it is the last thread; an exited child of this process is reaped here.
    """
    try:
        proc.wait(timeout=0)
        return True
    except psutil.TimeoutExpired:
        pass
    except (psutil.NoSuchProcess, ChildProcessError):
        return True
    try:
        return proc.status() == psutil.STATUS_ZOMBIE and proc.num_threads() <= 1
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = POLL_INTERVAL_S) -> bool:
    """Polls ``predicate`` every ``interval_s`` for at most ``timeout_s``; whether it became true."""
    retrying = Retrying(
        stop=stop_after_delay(timeout_s), wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda done: not done), retry_error_callback=lambda _state: False,
    )
    return bool(retrying(predicate))


def terminate_group(pid: int, timeout_s: float) -> bool:
    """SIGTERM the process group ``pid`` leads, wait up to ``timeout_s``, then SIGKILL it and wait 2 s more.

    Returns:
        Whether the leader has exited.
    """
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, KILL_WAIT_S)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        if wait_until(lambda: has_exited(proc), wait_s):
            return True
    return False
