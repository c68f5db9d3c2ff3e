"""Following a run: poll it until it ends, reporting each state change of the run and of its steps.

The poll is a ``tenacity`` loop: a poll every ``poll_seconds`` until the run reaches a final state or the wait's
timeout runs out; a few transient failures in a row (a proxy restarting) are tolerated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity

from boston_model.errors import first_line
from pipeline.submit.connection import host_of, remote_call
from pipeline.submit.errors import KfpApiError, KfpConnectionError, RunFailedError, RunTimeoutError

DEFAULT_WAIT_TIMEOUT_S = 3600.0
DEFAULT_POLL_S = 5.0
FAILED_STATES = frozenset({"FAILED", "CANCELED"})
FINAL_STATES = FAILED_STATES | {"SUCCEEDED", "SKIPPED"}
# A run is followed for up to an hour: this many failed polls in a row are tolerated (a proxy restarting).
MAX_POLL_FAILURES = 3


@dataclass(frozen=True)
class StateChange:
    """A run or one of its steps entered a new state.

    Attributes:
        subject: ``"run"`` or the step's display name.
        state: The new state (PENDING, RUNNING, SUCCEEDED, FAILED, …).
        elapsed_s: Seconds since the wait began.
    """

    subject: str
    state: str
    elapsed_s: float

    def __str__(self) -> str:
        return f"[{self.elapsed_s:5.0f}s] {self.subject}: {self.state}"


class _FailuresInARow(tenacity.stop.stop_base):
    """Stops once more than ``limit`` polls in a row have failed; a poll that reads the run resets the count."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        self.count = self.count + 1 if retry_state.outcome is not None and retry_state.outcome.failed else 0
        return self.count > self.limit


def _transient(exc: BaseException) -> bool:
    """No answer, or a server error: worth another poll. A 4xx (credentials, a deleted run) is not."""
    if isinstance(exc, KfpConnectionError):
        return True
    return isinstance(exc, KfpApiError) and (exc.status == 0 or exc.status >= 500)


def wait_for_run(
    client: Any, run_id: str, *, timeout: float = DEFAULT_WAIT_TIMEOUT_S, poll_seconds: float = DEFAULT_POLL_S,
    on_change: Callable[[StateChange], None] | None = None,
) -> str:
    """Follows a run until it ends, reporting each state change of the run and of its steps.

    Args:
        client: A connected ``kfp.Client`` (``SubmitResult.client``).
        run_id: The run to follow.
        timeout: Seconds to wait at most; the run itself is not stopped.
        poll_seconds: Seconds between polls.
        on_change: Called with every state change, in order.

    Returns:
        The final state: SUCCEEDED (or SKIPPED).

    Raises:
        RunFailedError: The run ended FAILED or CANCELED.
        RunTimeoutError: The timeout ran out first.
        SubmitError: The API could not be read (a few failed polls in a row are tolerated).
    """
    host = host_of(client)
    auth = getattr(client, "boston_auth", None)
    report = on_change or (lambda _change: None)
    started = time.monotonic()
    seen: dict[str, str] = {}
    last_state = ""

    def poll() -> str:
        nonlocal last_state
        with remote_call(host, f"reading run {run_id}", auth=auth):
            run = client.get_run(run_id)
        last_state = state = str(run.state or "").upper()
        for change in _changes(run, state, seen, time.monotonic() - started):
            report(change)
        if state in FAILED_STATES:
            raise RunFailedError(run_id, state, _failed_tasks(run), _run_error(run))
        return state

    failures = _FailuresInARow(MAX_POLL_FAILURES)

    def give_up(retry_state: tenacity.RetryCallState) -> str:
        if failures.count > MAX_POLL_FAILURES and retry_state.outcome is not None:
            return retry_state.outcome.result()  # re-raises the last poll's error
        raise RunTimeoutError(run_id, last_state, timeout)

    poller = tenacity.Retrying(
        retry=(tenacity.retry_if_result(lambda state: state not in FINAL_STATES)
               | tenacity.retry_if_exception(_transient)),
        # The failure count goes first: it must see every poll, and the timeout must not cut it short.
        stop=failures | tenacity.stop_after_delay(timeout),
        # Never sleep past the timeout: the last poll happens when it runs out.
        wait=lambda retry_state: min(poll_seconds, max(0.0, timeout - retry_state.seconds_since_start)),
        retry_error_callback=give_up,
    )
    return poller(poll)


def _tasks(run: Any) -> list[Any]:
    details = getattr(run, "run_details", None)
    return [t for t in (getattr(details, "task_details", None) or []) if getattr(t, "display_name", None)]


def _changes(run: Any, state: str, seen: dict[str, str], elapsed: float) -> list[StateChange]:
    """New states since the last poll; the run's own change comes first, or last when the run has ended."""
    tasks = []
    for task in _tasks(run):
        task_state = str(task.state or "").upper()
        if task_state and seen.get(f"task:{task.display_name}") != task_state:
            seen[f"task:{task.display_name}"] = task_state
            tasks.append(StateChange(task.display_name, task_state, elapsed))
    if not state or seen.get("run") == state:
        return tasks
    seen["run"] = state
    own = StateChange("run", state, elapsed)
    return tasks + [own] if state in FINAL_STATES else [own] + tasks


def _failed_tasks(run: Any) -> list[str]:
    return [t.display_name for t in _tasks(run) if str(t.state or "").upper() == "FAILED"]


def _run_error(run: Any) -> str:
    error = getattr(run, "error", None)
    return first_line(getattr(error, "message", "") or "")
