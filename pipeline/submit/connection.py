"""Connecting to the KFP API with ``kfp.Client``, and kfp's failures as one line naming what to check.

What kfp lacks and this module adds: a connect timeout, a health check that asks once, and one-line errors.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from boston_model.errors import OneLineError, first_line

if TYPE_CHECKING:
    import kfp

# kfp's names: kfp.Client reads the first two itself, ServiceAccountTokenVolumeCredentials the third, and the `kfp`
# command the next two. kfp has no variable for cookies (it keeps them in its context file): that one is ours.
ENV_HOST = "KF_PIPELINES_ENDPOINT"
ENV_UI_HOST = "KF_PIPELINES_UI_ENDPOINT"
ENV_TOKEN_FILE = "KF_PIPELINES_SA_TOKEN_PATH"
ENV_NAMESPACE = "KFP_NAMESPACE"
ENV_TOKEN = "KFP_EXISTING_TOKEN"
ENV_COOKIES = "KFP_COOKIES"
# kfp.client.KF_PIPELINES_SA_TOKEN_PATH, the token Kubeflow projects into a notebook pod that asks for one: kfp uses
# it only when it finds the API by itself, here with any host.
IN_CLUSTER_TOKEN_FILE = Path("/var/run/secrets/kubeflow/pipelines/token")
CONNECT_TIMEOUT_S = 10.0

AUTH_HINT = (f"give a bearer token (--token / {ENV_TOKEN}), a service-account token file (--token-file / "
             f"{ENV_TOKEN_FILE}) or the Kubeflow session cookie (--cookies / {ENV_COOKIES}, e.g. "
             "'authservice_session=…')")
PORT_FORWARD_HINT = "e.g. http://localhost:8080 after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"


def resolve_host(host: str | None) -> str:
    """The KFP API base URL: ``host``, else ``$KF_PIPELINES_ENDPOINT``; a ValueError if there is none or it is not an
    http(s) base URL (kfp would quietly prefix ``https://``)."""
    value = (host or os.environ.get(ENV_HOST) or "").strip()
    if not value:
        raise ValueError(f"no Kubeflow Pipelines host: give --host or set {ENV_HOST} ({PORT_FORWARD_HINT})")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"host {value!r} must be an http:// or https:// URL ({PORT_FORWARD_HINT})")
    if parts.query or parts.fragment:
        raise ValueError(f"host {value!r}: give the base URL only, without '?…' or '#/…'")
    return value.rstrip("/")


@functools.cache
def _client_class() -> type[kfp.Client]:
    import kfp

    class Client(kfp.Client):
        """``kfp.Client`` that remembers its host (for messages) and whose health check asks once.

        kfp's own check, which ``Client()`` runs when no namespace is given, retries 5 times 5 s apart and logs a
        traceback each time: a wrong token would take 25 s to report.
        """

        def __init__(self, host: str, **kwargs: Any) -> None:
            self.host = host
            super().__init__(host=host, **kwargs)

        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            return self._healthz_api.healthz_service_get_healthz()

    return Client


def connect(
    host: str | None = None, *, namespace: str | None = None, existing_token: str | None = None,
    token_file: str | Path | None = None, cookies: str | None = None,
) -> kfp.Client:
    """A ``kfp.Client`` for ``host`` (default ``$KF_PIPELINES_ENDPOINT``), once something answers there.

    Credentials: the arguments if any is given, else ``$KFP_EXISTING_TOKEN``, ``$KF_PIPELINES_SA_TOKEN_PATH`` and
    ``$KFP_COOKIES``, else the pipelines token Kubeflow projects into a notebook pod (when present).

    Raises:
        ValueError: Bad arguments (no host, both a token and a token file, an unreadable or empty token file).
        OneLineError: The host cannot be reached, or refuses the client.
    """
    host = resolve_host(host)
    if not (existing_token or token_file or cookies):
        existing_token, token_file = os.environ.get(ENV_TOKEN), os.environ.get(ENV_TOKEN_FILE)
        cookies = os.environ.get(ENV_COOKIES)
        if not (existing_token or token_file or cookies) and IN_CLUSTER_TOKEN_FILE.is_file():
            token_file = IN_CLUSTER_TOKEN_FILE
    if existing_token and token_file:
        raise ValueError(f"give either a token or a token file ({token_file}), not both")
    credentials = None
    if token_file:
        from kfp.client import ServiceAccountTokenVolumeCredentials

        try:  # kfp would log an error and a traceback on every request instead
            if not Path(token_file).expanduser().read_text().strip():
                raise ValueError(f"the token file {token_file} is empty")
        except OSError as exc:
            raise ValueError(f"cannot read the token file {token_file}: {exc.strerror or exc}") from exc
        credentials = ServiceAccountTokenVolumeCredentials(path=str(Path(token_file).expanduser()))
    check_reachable(host)
    with remote_call(host, "connecting", namespace), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "needs a v2 backend", on every Client()
        return _client_class()(host, namespace=namespace or "kubeflow",  # "kubeflow" is kfp's "not given"
                               existing_token=existing_token or None, cookies=cookies or None,
                               credentials=credentials)


def check_reachable(host: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Opens and closes a TCP connection, so a wrong host fails in seconds (kfp sets no connect timeout)."""
    parts = urlsplit(host)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=timeout_s).close()
    except ConnectionRefusedError as exc:
        raise OneLineError(f"nothing is listening at {host} (connection refused): check --host and that the "
                           f"port-forward or tunnel is running ({PORT_FORWARD_HINT})") from exc
    except OSError as exc:
        reason = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else exc.strerror or exc
        raise OneLineError(f"cannot reach {host} ({reason}): check --host, VPN or firewall") from exc


@contextlib.contextmanager
def remote_call(host: str, action: str, namespace: str | None = None) -> Iterator[None]:
    """Runs calls into kfp without its "… details: <link>" prints, their failures as a OneLineError naming the host
    and what to check."""
    import kfp_server_api
    import urllib3

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except kfp_server_api.ApiException as exc:
        raise OneLineError(_refusal(host, action, exc, namespace)) from exc
    except urllib3.exceptions.HTTPError as exc:
        reason = first_line(getattr(exc, "reason", None) or exc)
        raise OneLineError(f"lost the connection to {host} while {action}: {reason}") from exc
    except (OSError, ValueError) as exc:  # a token file that vanished; kfp's checks (two experiments with one name)
        raise OneLineError(f"{host}: {action}: {first_line(exc, type(exc).__name__)}") from exc


def _refusal(host: str, action: str, exc: Any, namespace: str | None) -> str:
    status = int(exc.status or 0)
    said = _server_message(exc.body)
    said = f": {said}" if said else ""
    if status == 0:
        return f"cannot talk to {host} while {action}: {first_line(exc.reason)}"
    if status == 401:
        return f"{host} answered 401 Unauthorized while {action}: {AUTH_HINT}"
    if status == 403:
        where = f"namespace {namespace!r}" if namespace else "the default namespace"
        return (f"{host} answered 403 Forbidden while {action}{said}: the credentials were accepted but may not use "
                f"{where}; check --namespace (your profile namespace) and that your account is a contributor there")
    if status == 404:
        return (f"{host} answered 404 Not Found while {action}{said}: check that --host is the Kubeflow Pipelines "
                f"API ({PORT_FORWARD_HINT})")
    return f"{host} answered {status} {exc.reason or ''} while {action}{said}".replace("  ", " ")


def _server_message(body: Any) -> str:
    """The message of a grpc-gateway error body, or a hint when an auth proxy answered with a web page."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        payload = json.loads(text)
    except ValueError:
        return "an HTML page (a login page of an auth proxy?)" if "<html" in text[:500].lower() else first_line(text)
    message = payload.get("message") or payload.get("error") if isinstance(payload, dict) else ""
    return first_line(message or "")[:300]
