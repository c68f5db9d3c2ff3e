"""What every component body shares: one-line failures and the object store from the environment."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from boston_model.errors import OneLineError, first_line
from boston_model.store import ObjectStore, S3Settings, StoreError

# Expected failures (bad input, the store, a release) are OneLineErrors: one line for people. Anything else is a
# bug and keeps its traceback (a ValueError from numpy included).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (OneLineError,)


@contextlib.contextmanager
def fail_with_one_line(step: str) -> Iterator[None]:
    """Turns an expected error into one ``ERROR <step>: <message>`` line on stderr and exit code 1."""
    try:
        yield
    except EXPECTED_ERRORS as exc:
        print(f"ERROR {step}: {first_line(exc, type(exc).__name__)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def store_settings(s3_endpoint: str = "") -> S3Settings | None:
    """S3 settings from the environment (MINIO_*); a non-empty ``s3_endpoint`` overrides MINIO_ENDPOINT.

    Credentials only ever come from the environment (a Kubernetes Secret on a cluster), never from parameters.
    """
    env = dict(os.environ)
    if s3_endpoint:
        env["MINIO_ENDPOINT"] = s3_endpoint
    return S3Settings.from_env(env)


def object_store(s3_endpoint: str = "") -> ObjectStore:
    """The object store the environment points at; a one-line StoreError when none is configured."""
    settings = store_settings(s3_endpoint)
    if settings is None:
        raise StoreError(
            "no object store configured: set MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY "
            "(boston-pipeline run sets them for the embedded store)"
        )
    return ObjectStore(settings)
