"""Submit the pipeline to Kubeflow Pipelines: upload it (a new version if it exists), then run or schedule it.

One code path for ``boston-pipeline submit``, the notebook and users' scripts::

    from pipeline.submit import submit, wait_for_run

    result = submit("http://localhost:8080", params={"epochs": 500})
    print(result.url)
    wait_for_run(result.client, result.run_id, on_change=print)

Everything that can be checked locally (the YAML, the parameters, the cron) is checked before the server is
contacted; server and network failures become a ``SubmitError`` whose message is one line naming the host and
what to check. kfp and kfp_server_api are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline import config

if TYPE_CHECKING:
    import kfp

ENV_HOST = "KFP_HOST"
ENV_NAMESPACE = "KFP_NAMESPACE"
ENV_TOKEN = "KFP_TOKEN"
ENV_TOKEN_FILE = "KFP_TOKEN_FILE"
ENV_COOKIES = "KFP_COOKIES"
# kfp's own names, honoured too so an environment set up for kfp works unchanged
KFP_ENV_HOST = "KF_PIPELINES_ENDPOINT"
KFP_ENV_UI_HOST = "KF_PIPELINES_UI_ENDPOINT"
KFP_ENV_TOKEN_FILE = "KF_PIPELINES_SA_TOKEN_PATH"
# Where Kubeflow projects a pipelines-audience service-account token into a notebook pod that asks for one.
IN_CLUSTER_TOKEN_FILE = Path("/var/run/secrets/kubeflow/pipelines/token")

DEFAULT_EXPERIMENT = config.PIPELINE_NAME
DEFAULT_WAIT_TIMEOUT_S = 3600.0
DEFAULT_POLL_S = 5.0
CONNECT_TIMEOUT_S = 10.0
FAILED_STATES = frozenset({"FAILED", "CANCELED"})
FINAL_STATES = FAILED_STATES | {"SUCCEEDED", "SKIPPED"}
# A run is followed for up to an hour: this many failed polls in a row are tolerated (a proxy restarting).
MAX_POLL_FAILURES = 3

AUTH_HINT = (
    "give a bearer token (--token / KFP_TOKEN), a service-account token file (--token-file / KFP_TOKEN_FILE) "
    "or the Kubeflow session cookie (--cookies / KFP_COOKIES, e.g. 'authservice_session=…')"
)
PORT_FORWARD_HINT = "e.g. http://localhost:8080 after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"


class SubmitError(Exception):
    """A submission problem, worded as one line for people."""


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


# --- the compiled pipeline ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSpec:
    """One pipeline parameter as the compiled YAML declares it (``root.inputDefinitions.parameters``)."""

    name: str
    type: str  # NUMBER_DOUBLE, NUMBER_INTEGER, STRING, BOOLEAN, LIST or STRUCT
    default: Any = None
    description: str = ""
    optional: bool = False


@dataclass(frozen=True)
class PipelinePackage:
    """A compiled pipeline file and what submitting it needs from it."""

    path: Path
    name: str
    display_name: str
    description: str
    parameters: dict[str, ParameterSpec]
    sha256: str


def load_package(path: str | Path) -> PipelinePackage:
    """Reads a compiled pipeline YAML (the IR that ``boston-pipeline compile`` writes).

    Raises:
        SubmitError: The file is missing or is not a compiled KFP pipeline.
    """
    import yaml

    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise SubmitError(f"{path}: expected a compiled pipeline .yaml (from `boston-pipeline compile`)")
    try:
        data = path.read_bytes()
        spec = next(yaml.safe_load_all(data), None)
    except OSError as exc:
        raise SubmitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SubmitError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise SubmitError(f"{path} is not a compiled KFP pipeline (no pipelineInfo/root); "
                          "write one with `boston-pipeline compile`")
    info = spec["pipelineInfo"]
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    parameters = {
        name: ParameterSpec(name, str(d.get("parameterType", "STRING")), _default(d),
                            str(d.get("description", "")), bool(d.get("isOptional", False)))
        for name, d in declared.items()
    }
    return PipelinePackage(
        path=path, name=str(info["name"]), display_name=str(info.get("displayName") or info["name"]),
        description=str(info.get("description", "")), parameters=parameters,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _default(declared: Mapping[str, Any]) -> Any:
    value = declared.get("defaultValue")
    # The IR stores every number as a double (epochs: 1000.0); show an integer parameter's default as one.
    if declared.get("parameterType") == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_TYPE_WORDS = {
    "NUMBER_DOUBLE": "a number", "NUMBER_INTEGER": "an integer", "STRING": "a string",
    "BOOLEAN": "true or false", "LIST": "a JSON list", "STRUCT": "a JSON object",
}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def coerce_parameters(package: PipelinePackage, values: Mapping[str, Any]) -> dict[str, Any]:
    """Checks run arguments against the pipeline's declared parameters and converts them to the declared types.

    Values may be strings (as ``--param key=value`` gives them) or Python values; strings are converted by the
    parameter's type: NUMBER_DOUBLE -> float, NUMBER_INTEGER -> int, BOOLEAN -> bool, LIST/STRUCT -> JSON.

    Returns:
        The arguments to send; parameters left out take the pipeline's defaults on the server.

    Raises:
        ParameterError: An unknown name (the message lists the valid ones), a value of the wrong type, or a
            required parameter without a value.
    """
    valid = sorted(package.parameters)
    converted: dict[str, Any] = {}
    for name, value in values.items():
        spec = package.parameters.get(name)
        if spec is None:
            import difflib

            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(f"unknown parameter {name!r}{hint}; the pipeline's parameters are: "
                                 f"{', '.join(valid)}")
        converted[name] = _coerce(spec, value)
    missing = [s.name for s in package.parameters.values() if not s.optional and s.name not in converted]
    if missing:
        raise ParameterError(f"missing value for required parameter(s): {', '.join(missing)}")
    return converted


def _coerce(spec: ParameterSpec, value: Any) -> Any:
    def bad() -> ParameterError:
        return ParameterError(f"parameter {spec.name!r} expects {_TYPE_WORDS.get(spec.type, spec.type)} "
                              f"({spec.type}), got {value!r}")

    kind = spec.type
    if kind == "STRING":
        if not isinstance(value, str):
            raise bad()
        return value
    if kind == "NUMBER_INTEGER":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise bad()
        try:
            return int(value)
        except ValueError:
            raise bad() from None
    if kind == "NUMBER_DOUBLE":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad()
        try:
            number = float(value)
        except ValueError:
            raise bad() from None
        if not math.isfinite(number):  # JSON has no NaN/Infinity: the server would reject the run
            raise bad()
        return number
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad()
    if kind in ("LIST", "STRUCT"):
        wanted = list if kind == "LIST" else dict
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise bad() from None
        if not isinstance(value, wanted):
            raise bad()
        return value
    return value  # a type this SDK version does not know: the server decides


# --- cron -----------------------------------------------------------------------------------------------------

# KFP's scheduler parses cron with robfig/cron: 6 fields, seconds first, or a descriptor.
_CRON_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31),
                ("month", 1, 12), ("day-of-week", 0, 6))
_CRON_NAMES = {
    "month": {m: i for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)},
    "day-of-week": {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))},
}
_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_TERM = re.compile(r"(?P<range>\*|\?|(?P<low>\w+)(?:-(?P<high>\w+))?)(?:/(?P<step>\d+))?")
_GO_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
CRON_HELP = ("6 fields: second minute hour day-of-month month day-of-week, e.g. '0 0 3 * * *' = every day at "
             "03:00 (the cluster's time zone, usually UTC)")


def validate_cron(expression: str) -> str:
    """Checks a KFP cron expression (6 fields, seconds first; or @daily, @every 6h, …).

    Returns:
        The expression with its whitespace normalised.

    Raises:
        CronError: The expression would be rejected by the scheduler; the message says why.
    """
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text in _CRON_DESCRIPTORS:
            return text
        if text.startswith("@every ") and _GO_DURATION.fullmatch(text[len("@every "):]):
            return text
        raise CronError(f"cron {expression!r}: unknown descriptor; use one of {', '.join(sorted(_CRON_DESCRIPTORS))}"
                        " or '@every <duration>' such as '@every 6h'")
    fields = text.split(" ") if text else []
    if len(fields) != 6:
        hint = f"; prefix a seconds field: '0 {text}'" if len(fields) == 5 else ""
        raise CronError(f"cron {expression!r} has {len(fields)} field(s); KFP's cron has {CRON_HELP}{hint}")
    for value, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for term in value.split(","):
            match = _CRON_TERM.fullmatch(term)
            if match is None:
                raise CronError(f"cron {expression!r}: cannot read {name} field {value!r}")
            bounds = [match["low"], match["high"]] if match["low"] else []
            numbers = [_cron_number(expression, name, b, low, high) for b in bounds if b is not None]
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                raise CronError(f"cron {expression!r}: {name} range {term!r} runs backwards")
            if match["step"] is not None and int(match["step"]) < 1:
                raise CronError(f"cron {expression!r}: {name} step must be at least 1")
    return text


def _cron_number(expression: str, name: str, token: str, low: int, high: int) -> int:
    number = _CRON_NAMES.get(name, {}).get(token.upper())
    if number is None:
        if not token.isdigit():
            raise CronError(f"cron {expression!r}: {name} value {token!r} is not a number")
        number = int(token)
    if not low <= number <= high:
        raise CronError(f"cron {expression!r}: {name} value {token!r} is outside {low}-{high}")
    return number


# --- connecting ----------------------------------------------------------------------------------------------


def resolve_host(host: str | None) -> str:
    """The KFP API base URL: ``host``, else ``$KFP_HOST``, else kfp's ``$KF_PIPELINES_ENDPOINT``.

    Raises:
        SubmitError: No host, or not an http(s) URL.
    """
    value = (host or os.environ.get(ENV_HOST) or os.environ.get(KFP_ENV_HOST) or "").strip()
    if not value:
        raise SubmitError(f"no Kubeflow Pipelines host: give --host or set {ENV_HOST} ({PORT_FORWARD_HINT})")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubmitError(f"host {value!r} must be an http:// or https:// URL ({PORT_FORWARD_HINT})")
    if parts.query or parts.fragment:
        raise SubmitError(f"host {value!r}: give the base URL only, without '?…' or '#/…'")
    return value.rstrip("/")


@dataclass(frozen=True)
class Auth:
    """How to authenticate: at most one of a token or a token file, plus optional cookies."""

    token: str | None = None
    token_file: Path | None = None
    cookies: str | None = None

    def describe(self) -> str:
        """A safe description for messages (never the secret itself)."""
        parts = [p for p, on in (("bearer token", self.token), (f"token file {self.token_file}", self.token_file),
                                 ("cookies", self.cookies)) if on]
        return " + ".join(parts) or "no credentials"


def resolve_auth(
    existing_token: str | None = None, token_file: str | Path | None = None, cookies: str | None = None,
) -> Auth:
    """Picks the credentials: the arguments if any are given, else the environment.

    Environment: ``KFP_TOKEN``, ``KFP_TOKEN_FILE`` (or kfp's ``KF_PIPELINES_SA_TOKEN_PATH``), ``KFP_COOKIES``; in a
    Kubeflow notebook pod the projected token at /var/run/secrets/kubeflow/pipelines/token is used when present.

    Raises:
        SubmitError: Both a token and a token file, or an unreadable/empty token file.
    """
    if not (existing_token or token_file or cookies):
        existing_token = os.environ.get(ENV_TOKEN) or None
        token_file = os.environ.get(ENV_TOKEN_FILE) or os.environ.get(KFP_ENV_TOKEN_FILE) or None
        cookies = os.environ.get(ENV_COOKIES) or None
        if not (existing_token or token_file or cookies) and IN_CLUSTER_TOKEN_FILE.is_file():
            token_file = IN_CLUSTER_TOKEN_FILE
    if existing_token and token_file:
        raise SubmitError("give either a token or a token file, not both")
    path = Path(token_file).expanduser() if token_file else None
    if path is not None:
        try:
            content = path.read_text().strip()
        except OSError as exc:
            raise SubmitError(f"cannot read the token file {path}: {exc.strerror or exc}") from exc
        if not content:
            raise SubmitError(f"the token file {path} is empty")
    return Auth(token=existing_token or None, token_file=path, cookies=cookies or None)


@functools.cache
def _client_class() -> type[kfp.Client]:
    import kfp

    class FailFastClient(kfp.Client):
        """kfp.Client whose health check asks once.

        kfp's own retries 5 times, 5 s apart, logging a traceback each time: a wrong token would take 25 s to
        report. Everything else is the real client.
        """

        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            return self._healthz_api.healthz_service_get_healthz()

    return FailFastClient


def connect(
    host: str | None = None, *, namespace: str | None = None, existing_token: str | None = None,
    token_file: str | Path | None = None, cookies: str | None = None, ui_host: str | None = None,
) -> kfp.Client:
    """Creates a ``kfp.Client`` for ``host`` after checking that something listens there.

    Args:
        host: KFP API base URL (default ``$KFP_HOST``).
        namespace: Profile namespace on multi-user Kubeflow (default ``$KFP_NAMESPACE``).
        existing_token: Bearer token (default ``$KFP_TOKEN``).
        token_file: File holding a token, re-read on every request (default ``$KFP_TOKEN_FILE``).
        cookies: Cookie header value, e.g. ``authservice_session=…`` (default ``$KFP_COOKIES``).
        ui_host: Base URL of the KFP UI for links, when it differs from ``host``.

    Raises:
        SubmitError: Bad arguments, or the host cannot be reached / refuses the credentials.
    """
    host = resolve_host(host)
    namespace = namespace or os.environ.get(ENV_NAMESPACE) or None
    auth = resolve_auth(existing_token, token_file, cookies)
    check_reachable(host)
    credentials = None
    if auth.token_file is not None:
        from kfp.client import ServiceAccountTokenVolumeCredentials

        credentials = ServiceAccountTokenVolumeCredentials(path=str(auth.token_file))
    with _remote_call(host, "connecting", namespace, auth), warnings.catch_warnings():
        # kfp warns on every Client() that it needs a v2 backend; we only speak v2beta1, so it is noise here.
        warnings.simplefilter("ignore", FutureWarning)
        client = _client_class()(
            host=host, namespace=namespace or "kubeflow",  # "kubeflow" is kfp's "not given" value
            existing_token=auth.token, cookies=auth.cookies, credentials=credentials, ui_host=ui_host,
        )
    # kfp keeps these only in private fields; messages and links need them.
    client.boston_host = host
    client.boston_ui_host = (ui_host or os.environ.get(KFP_ENV_UI_HOST) or host).rstrip("/")
    client.boston_auth = auth
    return client


def check_reachable(host: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Opens and closes a TCP connection to the host, so a wrong host fails in seconds with a clear line.

    kfp sets no connect timeout: an unroutable address would otherwise hang until the OS gives up.
    """
    parts = urlsplit(host)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except socket.gaierror as exc:
        raise KfpConnectionError(f"cannot resolve {parts.hostname!r} (from {host}): check the host name") from exc
    except ConnectionRefusedError as exc:
        raise KfpConnectionError(
            f"nothing is listening at {host} (connection refused): check --host and that the port-forward or "
            f"tunnel is running ({PORT_FORWARD_HINT})") from exc
    except TimeoutError as exc:
        raise KfpConnectionError(
            f"no answer from {host} within {timeout_s:g} s: check --host, VPN or firewall") from exc
    except OSError as exc:
        raise KfpConnectionError(f"cannot reach {host}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _remote_call(host: str, action: str, namespace: str | None = None, auth: Auth | None = None) -> Iterator[None]:
    """Wraps calls into kfp: their exceptions become one-line SubmitErrors naming the host and what to check.

    kfp also prints "… details: <link>" after most calls; that is swallowed, as callers print their own summary
    from the result.
    """
    import kfp_server_api
    import urllib3

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except SubmitError:
        raise
    except kfp_server_api.ApiException as exc:
        raise _api_error(host, action, exc, namespace, auth) from exc
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise KfpConnectionError(f"lost the connection to {host} while {action}: {_first_line(reason)}") from exc
    except OSError as exc:  # e.g. the token file vanished between requests
        raise SubmitError(f"{action}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # kfp's own checks, e.g. two experiments with one name
        raise SubmitError(f"{host}: {action}: {_first_line(exc)}") from exc


def _api_error(host: str, action: str, exc: Any, namespace: str | None, auth: Auth | None) -> KfpApiError:
    status = int(exc.status or 0)
    detail = _server_message(exc.body)
    said = f": {detail}" if detail else ""
    if status == 0:
        return KfpApiError(f"cannot talk to {host} while {action}: {_first_line(exc.reason)}", status)
    if status == 401:
        used = f" (sent {auth.describe()})" if auth else ""
        return KfpAuthError(f"{host} answered 401 Unauthorized while {action}{used}: {AUTH_HINT}", status)
    if status == 403:
        where = f"namespace {namespace!r}" if namespace else "the default namespace"
        return KfpAuthError(
            f"{host} answered 403 Forbidden while {action}{said}: the credentials were accepted but may not use "
            f"{where}; check --namespace (your profile namespace) and that your account is a contributor there",
            status)
    if status == 404:
        return KfpApiError(f"{host} answered 404 Not Found while {action}{said}: check that --host is the Kubeflow "
                           f"Pipelines API ({PORT_FORWARD_HINT})", status)
    return KfpApiError(f"{host} answered {status} {exc.reason or ''} while {action}{said}".replace("  ", " "),
                       status)


def _server_message(body: Any) -> str:
    """The message of a grpc-gateway error body, or a hint when an auth proxy answered with a web page."""
    if not body:
        return ""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        payload = json.loads(text)
    except ValueError:
        if "<html" in text[:500].lower():
            return "an HTML page (a login page of an auth proxy?)"
        return _first_line(text)[:200]
    if isinstance(payload, dict):
        return _first_line(str(payload.get("message") or payload.get("error") or ""))[:300]
    return ""


def _first_line(value: Any) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""


def _host_of(client: Any) -> str:
    host = getattr(client, "boston_host", None)
    return host or getattr(getattr(client, "_existing_config", None), "host", None) or "the KFP API"


def _require(value: str | None, what: str, host: str) -> str:
    """Guards against an answer without an id: a proxy's login page parses as an empty object."""
    if not value:
        raise SubmitError(f"{host} returned no {what}: is --host the KFP API? An auth proxy may have answered "
                          f"instead; {AUTH_HINT}")
    return value


# --- submitting -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult:
    """What ``submit`` created.

    Attributes:
        url: The run's page in the KFP UI (or the recurring run's page).
        client: The connected ``kfp.Client`` (pass it to ``wait_for_run``).
    """

    host: str
    pipeline_id: str
    pipeline_version_id: str
    pipeline_version_name: str
    new_pipeline: bool
    experiment: str
    experiment_id: str
    run_name: str
    parameters: dict[str, Any]
    url: str
    run_id: str | None = None
    recurring_run_id: str | None = None
    namespace: str | None = None
    client: Any = field(default=None, repr=False, compare=False)


def run_url(ui_host: str, run_id: str) -> str:
    """The KFP UI page of a run."""
    return f"{ui_host.rstrip('/')}/#/runs/details/{run_id}"


def recurring_run_url(ui_host: str, recurring_run_id: str) -> str:
    """The KFP UI page of a recurring run."""
    return f"{ui_host.rstrip('/')}/#/recurringrun/details/{recurring_run_id}"


def submit(
    host: str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    pipeline_name: str | None = None,
    pipeline_yaml: str | Path | None = None,
    image: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
    token_file: str | Path | None = None,
    cookies: str | None = None,
    recurring: str | None = None,
    max_concurrency: int = 1,
    run_service_account: str | None = None,
    ui_host: str | None = None,
    client: kfp.Client | None = None,
    progress: Callable[[str], None] | None = None,
) -> SubmitResult:
    """Uploads the pipeline (a new version if the name exists) and starts a run, or a recurring run.

    Args:
        host: KFP API base URL (default ``$KFP_HOST``), e.g. ``http://localhost:8080``.
        params: Run arguments by parameter name; strings are converted to the declared types.
        experiment: Experiment name; created if missing.
        run_name: Run (or recurring run) name; default: the pipeline name and the UTC time.
        pipeline_name: Name of the pipeline in KFP; default: the compiled pipeline's name.
        pipeline_yaml: A compiled pipeline to upload; default: compile the project's pipeline now.
        image: Component image when compiling (default ``config.IMAGE``).
        namespace: Profile namespace on multi-user Kubeflow (default ``$KFP_NAMESPACE``); the pipeline, the
            experiment and the run are created there.
        existing_token: Bearer token (default ``$KFP_TOKEN``).
        token_file: Token file, e.g. a projected service-account token (default ``$KFP_TOKEN_FILE``).
        cookies: Cookie header value, e.g. ``authservice_session=…`` (default ``$KFP_COOKIES``).
        recurring: A 6-field KFP cron expression: create a recurring run instead of one run.
        max_concurrency: Recurring runs allowed at once.
        run_service_account: Kubernetes service account the run's pods use (default: the namespace's pipeline
            runner). Not the pipeline's ``service_account`` parameter, which is the predictor's.
        ui_host: Base URL of the KFP UI for links, when it differs from ``host``.
        client: An already connected ``kfp.Client`` (then host and credentials are not used).
        progress: Called with a short line before each remote step.

    Raises:
        SubmitError: Anything that stops the submission; its subclasses say what (ParameterError, CronError,
            KfpConnectionError, KfpAuthError, KfpApiError).
    """
    say = progress or (lambda _line: None)
    cron = validate_cron(recurring) if recurring is not None else None
    if max_concurrency < 1:
        raise SubmitError(f"max_concurrency must be at least 1, got {max_concurrency}")
    if pipeline_yaml is not None and image is not None:
        raise SubmitError("an image applies only when compiling; recompile the YAML with that image instead")
    with contextlib.ExitStack() as stack:
        if pipeline_yaml is None:
            from pipeline.runner import DEFAULT_YAML, compile_pipeline

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="boston-submit-")))
            say("compiling the pipeline")
            pipeline_yaml = compile_pipeline(folder / DEFAULT_YAML, image=image)
        package = load_package(pipeline_yaml)
        arguments = coerce_parameters(package, params or {})
        if client is None:
            say(f"connecting to {resolve_host(host)}")
            client = connect(host, namespace=namespace, existing_token=existing_token, token_file=token_file,
                             cookies=cookies, ui_host=ui_host)
        host = _host_of(client)
        auth = getattr(client, "boston_auth", None)
        with _remote_call(host, "checking the API (healthz)", namespace, auth):
            health = client.get_kfp_healthz()
        namespace = namespace or os.environ.get(ENV_NAMESPACE) or client.get_user_namespace() or None
        errors = functools.partial(_remote_call, host, namespace=namespace, auth=auth)
        if getattr(health, "multi_user", False) and not namespace:
            raise SubmitError(f"{host} is a multi-user Kubeflow: give --namespace (your profile namespace, "
                              f"e.g. kubeflow-user-example-com) or set {ENV_NAMESPACE}")
        name = pipeline_name or package.name
        say(f"uploading pipeline {name!r}")
        pipeline_id, version_id, version_name, new = _upload(client, package, name, namespace, host, errors)
        with errors(f"getting or creating experiment {experiment!r}"):
            experiment_id = _require(client.create_experiment(experiment, namespace=namespace).experiment_id,
                                     "experiment id", host)
        ui = (getattr(client, "boston_ui_host", None) or getattr(client, "_uihost", None) or host).rstrip("/")
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        common = dict(experiment_id=experiment_id, params=arguments, pipeline_id=pipeline_id, version_id=version_id,
                      service_account=run_service_account)
        shared = dict(host=host, pipeline_id=pipeline_id, pipeline_version_id=version_id,
                      pipeline_version_name=version_name, new_pipeline=new, experiment=experiment,
                      experiment_id=experiment_id, parameters=arguments, namespace=namespace, client=client)
        if cron is None:
            run_name = run_name or f"{name} {stamp}"
            say(f"starting run {run_name!r}")
            with errors(f"creating run {run_name!r}"):
                run = client.run_pipeline(job_name=run_name, **common)
            run_id = _require(run.run_id, "run id", host)
            return SubmitResult(**shared, run_name=run_name, url=run_url(ui, run_id), run_id=run_id)
        run_name = run_name or f"{name} retraining ({cron})"
        say(f"creating recurring run {run_name!r}")
        with errors(f"creating recurring run {run_name!r}"):
            recurring_run = client.create_recurring_run(
                job_name=run_name, cron_expression=cron, max_concurrency=max_concurrency,
                # Retraining needs the latest data, not one run per missed slot after a pause.
                no_catchup=True, description=f"{package.display_name}: scheduled retraining", **common)
        recurring_id = _require(recurring_run.recurring_run_id, "recurring run id", host)
        return SubmitResult(**shared, run_name=run_name, url=recurring_run_url(ui, recurring_id),
                            recurring_run_id=recurring_id)


def _upload(
    client: Any, package: PipelinePackage, name: str, namespace: str | None, host: str,
    errors: Callable[[str], contextlib.AbstractContextManager[None]],
) -> tuple[str, str, str, bool]:
    """Uploads a new pipeline, or a new version of the pipeline with this name; returns ids, version name, new?"""
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    with errors(f"looking up pipeline {name!r}"):
        found = client.list_pipelines(filter=flt, namespace=namespace, page_size=2).pipelines or []
    if len(found) > 1:
        raise SubmitError(f"{host} has {len(found)} pipelines named {name!r}; pass --pipeline-name to choose another")
    if not found:
        with errors(f"uploading pipeline {name!r}"):
            pipeline = client.upload_pipeline(str(package.path), pipeline_name=name,
                                              description=package.description, namespace=namespace)
        pipeline_id = _require(pipeline.pipeline_id, "pipeline id", host)
        with errors(f"reading the first version of pipeline {name!r}"):
            # The upload creates the pipeline and its first version; the answer only carries the pipeline.
            versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
        version = (versions.pipeline_versions or [None])[0]
        version_id = _require(getattr(version, "pipeline_version_id", None), "pipeline version id", host)
        return pipeline_id, version_id, str(version.display_name or version.name or name), True
    pipeline_id = _require(found[0].pipeline_id, "pipeline id", host)
    # Version names must be unique in a pipeline: time plus content hash, readable in the UI's version list.
    version_name = f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{package.sha256[:8]}"
    with errors(f"uploading version {version_name!r} of pipeline {name!r}"):
        version = client.upload_pipeline_version(
            str(package.path), version_name, pipeline_id=pipeline_id,
            description=f"spec sha256 {package.sha256}",
        )
    return pipeline_id, _require(version.pipeline_version_id, "pipeline version id", host), version_name, False


# --- following a run ------------------------------------------------------------------------------------------


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
    host = _host_of(client)
    report = on_change or (lambda _change: None)
    started = time.monotonic()
    seen: dict[str, str] = {}
    state = ""
    failures = 0
    while True:
        try:
            with _remote_call(host, f"reading run {run_id}", auth=getattr(client, "boston_auth", None)):
                run = client.get_run(run_id)
            failures = 0
        except (KfpConnectionError, KfpApiError) as exc:
            transient = isinstance(exc, KfpConnectionError) or exc.status == 0 or exc.status >= 500
            failures += 1
            if not transient or failures > MAX_POLL_FAILURES:
                raise
        else:
            state = str(run.state or "").upper()
            elapsed = time.monotonic() - started
            for change in _changes(run, state, seen, elapsed):
                report(change)
            if state in FINAL_STATES:
                if state in FAILED_STATES:
                    raise RunFailedError(run_id, state, _failed_tasks(run), _run_error(run))
                return state
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise RunTimeoutError(run_id, state, timeout)
        time.sleep(min(poll_seconds, remaining))


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
    return _first_line(getattr(error, "message", "") or "")
