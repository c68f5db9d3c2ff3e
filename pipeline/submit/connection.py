"""Connecting to the KFP API: the host, the credentials, a fail-fast ``kfp.Client``, and kfp's errors as one line.

Every call into kfp goes through ``remote_call``, which turns the client's exceptions into a ``SubmitError`` naming
the host and what to check (``--host``, the credentials, the namespace).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from boston_model.errors import first_line
from pipeline.submit.errors import KfpApiError, KfpAuthError, KfpConnectionError, SubmitError

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
CONNECT_TIMEOUT_S = 10.0

AUTH_HINT = (
    "give a bearer token (--token / KFP_TOKEN), a service-account token file (--token-file / KFP_TOKEN_FILE) "
    "or the Kubeflow session cookie (--cookies / KFP_COOKIES, e.g. 'authservice_session=…')"
)
PORT_FORWARD_HINT = "e.g. http://localhost:8080 after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"


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
    with remote_call(host, "connecting", namespace, auth), warnings.catch_warnings():
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
def remote_call(host: str, action: str, namespace: str | None = None, auth: Auth | None = None) -> Iterator[None]:
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
        raise KfpConnectionError(f"lost the connection to {host} while {action}: {first_line(reason)}") from exc
    except OSError as exc:  # e.g. the token file vanished between requests
        raise SubmitError(f"{action}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # kfp's own checks, e.g. two experiments with one name
        raise SubmitError(f"{host}: {action}: {first_line(exc)}") from exc


def _api_error(host: str, action: str, exc: Any, namespace: str | None, auth: Auth | None) -> KfpApiError:
    status = int(exc.status or 0)
    detail = _server_message(exc.body)
    said = f": {detail}" if detail else ""
    if status == 0:
        return KfpApiError(f"cannot talk to {host} while {action}: {first_line(exc.reason)}", status)
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
        return first_line(text)[:200]
    if isinstance(payload, dict):
        return first_line(str(payload.get("message") or payload.get("error") or ""))[:300]
    return ""


def host_of(client: Any) -> str:
    """The API host a client talks to, for messages (``connect`` records it; kfp keeps it private)."""
    host = getattr(client, "boston_host", None)
    return host or getattr(getattr(client, "_existing_config", None), "host", None) or "the KFP API"


def require_id(value: str | None, what: str, host: str) -> str:
    """Guards against an answer without an id: a proxy's login page parses as an empty object."""
    if not value:
        raise SubmitError(f"{host} returned no {what}: is --host the KFP API? An auth proxy may have answered "
                          f"instead; {AUTH_HINT}")
    return value
