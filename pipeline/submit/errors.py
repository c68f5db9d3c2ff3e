"""What can stop a submission, one class per cause; every message is one line for people."""

from __future__ import annotations

from boston_model.errors import OneLineError


class SubmitError(OneLineError):
    """A submission problem, worded as one line for people (the project's ``OneLineError``)."""


class ParameterError(SubmitError):
    """A pipeline parameter that the compiled pipeline does not declare, or a value of the wrong type."""


class CronError(SubmitError):
    """A cron expression that Kubeflow Pipelines' scheduler would not accept."""


class KfpConnectionError(SubmitError):
    """The KFP API could not be reached at all."""


class KfpApiError(SubmitError):
    """The KFP API answered with an error status.

    Attributes:
        status: The HTTP status (0 when there was no HTTP answer).
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class KfpAuthError(KfpApiError):
    """The KFP API refused the credentials (401) or the permission (403)."""


class RunFailedError(SubmitError):
    """A followed run ended FAILED or CANCELED.

    Attributes:
        run_id: The run.
        state: Its final state.
        failed_tasks: Display names of the steps that failed.
    """

    def __init__(self, run_id: str, state: str, failed_tasks: list[str], message: str) -> None:
        steps = f" in step(s) {', '.join(failed_tasks)}" if failed_tasks else ""
        super().__init__(f"run {run_id} {state}{steps}" + (f": {message}" if message else ""))
        self.run_id = run_id
        self.state = state
        self.failed_tasks = failed_tasks


class RunTimeoutError(SubmitError):
    """A followed run had not finished when the wait's timeout ran out (the run itself goes on)."""

    def __init__(self, run_id: str, state: str, timeout_s: float) -> None:
        super().__init__(f"run {run_id} still {state or 'not started'} after {timeout_s:g} s "
                         "(stopped waiting; the run goes on)")
        self.run_id = run_id
        self.state = state
