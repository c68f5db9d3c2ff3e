"""S3/MinIO object storage: settings from the environment and a small typed client.

Every failure of the server or the network surfaces as one `StoreError` line that names
the endpoint and what to check; the original exception stays in the chain for logs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from boston_model.errors import BadInput, OneLineError, first_line

ENV_ENDPOINT = "MINIO_ENDPOINT"
ENV_ACCESS_KEY = "MINIO_ACCESS_KEY"
ENV_SECRET_KEY = "MINIO_SECRET_KEY"
ENV_SECURE = "MINIO_SECURE"
ENV_REGION = "MINIO_REGION"
DEFAULT_REGION = "us-east-1"

_TRUE_WORDS = frozenset({"1", "true", "yes"})
_URI_SCHEMES = ("s3", "minio")
_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch"})
_ABSENT_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound"})
_CHUNK = 1024 * 1024


class StoreError(OneLineError):
    """An object-store failure, described in one line for people."""


class KeyNotFound(StoreError):
    """The requested object does not exist (callers may treat this as data)."""


@dataclass(frozen=True)
class S3Settings:
    """Where an S3-compatible server is and how to sign requests to it.

    Attributes:
        endpoint: ``host:port`` without a scheme.
        access_key: Access key id.
        secret_key: Secret key; never shown by ``repr``.
        secure: Use HTTPS.
        region: Signing region.
    """

    endpoint: str
    access_key: str
    secret_key: str
    secure: bool = False
    region: str = DEFAULT_REGION

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks; keys must not.
        return (
            f"S3Settings(endpoint={self.endpoint!r}, access_key='***', secret_key='***', "
            f"secure={self.secure}, region={self.region!r})"
        )

    @property
    def url(self) -> str:
        """The endpoint as a URL, e.g. ``http://127.0.0.1:8333``."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings | None:
        """Reads ``MINIO_*`` variables.

        ``MINIO_ENDPOINT`` may carry an ``http://`` or ``https://`` scheme, which then
        decides ``secure`` (over ``MINIO_SECURE``).

        Args:
            env: Variables to read; ``os.environ`` when None.

        Returns:
            The settings, or None when ``MINIO_ENDPOINT`` is unset or empty.

        Raises:
            StoreError: The endpoint is set but malformed or a key is missing.
        """
        env = os.environ if env is None else env
        raw = env.get(ENV_ENDPOINT, "").strip()
        if not raw:
            return None
        endpoint, secure = _split_endpoint(raw, env.get(ENV_SECURE, ""))
        missing = [name for name in (ENV_ACCESS_KEY, ENV_SECRET_KEY) if not env.get(name)]
        if missing:
            raise StoreError(
                f"{ENV_ENDPOINT} is set to {endpoint} but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not: set both keys, "
                f"or unset {ENV_ENDPOINT} to use the embedded store"
            )
        return cls(
            endpoint=endpoint,
            access_key=env[ENV_ACCESS_KEY],
            secret_key=env[ENV_SECRET_KEY],
            secure=secure,
            region=env.get(ENV_REGION, "").strip() or DEFAULT_REGION,
        )

    def to_env(self) -> dict[str, str]:
        """The ``MINIO_*`` variables that `from_env` turns back into these settings."""
        return {
            ENV_ENDPOINT: self.endpoint,
            ENV_ACCESS_KEY: self.access_key,
            ENV_SECRET_KEY: self.secret_key,
            ENV_SECURE: "true" if self.secure else "false",
            ENV_REGION: self.region,
        }


def _split_endpoint(raw: str, secure_flag: str) -> tuple[str, bool]:
    """Splits ``[scheme://]host:port[/]`` into ``host:port`` and whether to use TLS."""
    secure = secure_flag.strip().lower() in _TRUE_WORDS
    scheme, sep, rest = raw.partition("://")
    if sep:
        if scheme.lower() not in ("http", "https"):
            raise StoreError(
                f"{ENV_ENDPOINT}={raw} has scheme {scheme!r}: use host:port, http://host:port or https://host:port"
            )
        secure = scheme.lower() == "https"
        raw = rest
    endpoint = raw.rstrip("/")
    if not endpoint or "/" in endpoint:
        raise StoreError(f"{ENV_ENDPOINT}={raw} is not host:port: drop any path after the port")
    return endpoint, secure


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Splits ``s3://bucket/key`` or ``minio://bucket/key`` (KFP artifact URIs).

    Args:
        uri: The object URI.

    Returns:
        ``(bucket, key)``.

    Raises:
        ValueError: Another scheme, or the bucket or key is empty.
    """
    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme.lower() not in _URI_SCHEMES or not bucket or not key:
        raise BadInput(f"not an object URI: {uri!r} (expected s3://bucket/key or minio://bucket/key)")
    return bucket, key


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks so large files stay out of memory."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class ObjectStore:
    """A `minio.Minio` client whose errors are one-line `StoreError`s.

    Args:
        settings: Endpoint and credentials.
        connect_timeout: Seconds to wait for a TCP connection.
        read_timeout: Seconds to wait on each socket read.
    """

    def __init__(self, settings: S3Settings, *, connect_timeout: float = 3.0, read_timeout: float = 60.0) -> None:
        self.settings = settings
        # minio's default client waits 5 minutes per connect and retries 5 times, so an
        # unreachable endpoint would hang a pipeline step for ages; fail within seconds.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        self._client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            # A known region avoids a GetBucketLocation round trip before each first call.
            region=settings.region,
            http_client=http,
        )

    def __repr__(self) -> str:
        return f"ObjectStore({self.settings!r})"

    def check(self) -> None:
        """Proves the endpoint answers and accepts the credentials.

        Raises:
            StoreError: Unreachable endpoint or rejected credentials.
        """
        with self._translated():
            self._client.list_buckets()

    def bucket_exists(self, bucket: str) -> bool:
        """Whether ``bucket`` exists (a new store has none until the first model is pushed)."""
        with self._translated(bucket):
            return bool(self._client.bucket_exists(bucket))

    def ensure_bucket(self, bucket: str) -> bool:
        """Creates the bucket unless it exists; returns whether it was created."""
        with self._translated(bucket):
            if self._client.bucket_exists(bucket):
                return False
            try:
                self._client.make_bucket(bucket)
            except S3Error as exc:
                # Another writer may have created it between the two calls.
                if exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return False
                raise
            return True

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Writes ``data`` to ``bucket/key``."""
        with self._translated(bucket, key):
            self._client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """Reads the whole object.

        Raises:
            KeyNotFound: The key does not exist.
            StoreError: Any other failure, e.g. a missing bucket.
        """
        with self._translated(bucket, key):
            response = self._client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def put_json(self, bucket: str, key: str, obj: Any) -> None:
        """Writes ``obj`` as indented, key-sorted JSON (stable bytes for stable hashes)."""
        data = json.dumps(obj, indent=2, sort_keys=True).encode()
        self.put_bytes(bucket, key, data, content_type="application/json")

    def get_json(self, bucket: str, key: str) -> Any:
        """Reads a JSON object written by `put_json` (or anyone else)."""
        return json.loads(self.get_bytes(bucket, key))

    def exists(self, bucket: str, key: str) -> bool:
        """Whether ``bucket/key`` exists; a missing bucket counts as a missing key."""
        with self._translated(bucket, key):
            try:
                self._client.stat_object(bucket, key)
            except S3Error as exc:
                if exc.code in _ABSENT_CODES:
                    return False
                raise
            return True

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """All keys under ``prefix``, recursively, sorted."""
        with self._translated(bucket):
            objects = self._client.list_objects(bucket, prefix=prefix or None, recursive=True)
            return sorted(obj.object_name for obj in objects if obj.object_name is not None)

    def upload_file(
        self,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        content_type: str = "application/octet-stream",
    ) -> None:
        """Uploads a local file; local I/O errors propagate as `OSError`."""
        with self._translated(bucket, key):
            self._client.fput_object(bucket, key, os.fspath(path), content_type=content_type)

    def download_file(self, bucket: str, key: str, path: str | os.PathLike[str]) -> Path:
        """Downloads to ``path`` (parents created), replacing it only once complete.

        Returns:
            The written path.

        Raises:
            KeyNotFound: The key does not exist; ``path`` is left untouched.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        # get_object rather than fget_object: fget stats first, and a HEAD on a missing
        # bucket reports NoSuchKey, which would hide the real cause.
        with self._translated(bucket, key):
            response = self._client.get_object(bucket, key)
            try:
                with open(partial, "wb") as handle:
                    handle.writelines(response.stream(_CHUNK))
            finally:
                response.close()
                response.release_conn()
        os.replace(partial, target)
        return target

    @contextmanager
    def _translated(self, bucket: str | None = None, key: str | None = None) -> Iterator[None]:
        """Re-raises minio and urllib3 errors as one-line `StoreError`s."""
        try:
            yield
        except S3Error as exc:
            raise _from_s3_error(exc, self.settings.endpoint, bucket, key) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreError(
                f"cannot reach S3 endpoint {self.settings.endpoint} ({_reason(exc)}): "
                f"check {ENV_ENDPOINT} and that the server is running"
            ) from exc
        except MinioException as exc:
            raise StoreError(
                f"S3 endpoint {self.settings.endpoint} sent an unexpected response "
                f"({type(exc).__name__}: {first_line(str(exc))}): check that it is an S3 server"
            ) from exc


def _from_s3_error(exc: S3Error, endpoint: str, bucket: str | None, key: str | None) -> StoreError:
    """Maps an S3 error code to a message that says what to check."""
    code = exc.code or "UnknownError"
    if code in _CREDENTIAL_CODES:
        return StoreError(
            f"S3 endpoint {endpoint} rejected the credentials ({code}): check {ENV_ACCESS_KEY} / {ENV_SECRET_KEY}"
        )
    if code == "NoSuchBucket":
        return StoreError(
            f"bucket {bucket or exc.bucket_name!r} does not exist on S3 endpoint {endpoint}: "
            "check the bucket name or create it first"
        )
    if code == "NoSuchKey":
        return KeyNotFound(f"object s3://{bucket}/{key} does not exist on S3 endpoint {endpoint}")
    if code == "AccessDenied":
        return StoreError(
            f"S3 endpoint {endpoint} denied access to {_target(bucket, key)}: check the permissions of {ENV_ACCESS_KEY}"
        )
    return StoreError(
        f"S3 endpoint {endpoint} failed on {_target(bucket, key)} with {code}: {first_line(exc.message or '')}"
    )


def _target(bucket: str | None, key: str | None) -> str:
    if bucket and key:
        return f"s3://{bucket}/{key}"
    return f"bucket {bucket!r}" if bucket else "the endpoint"


def _reason(exc: BaseException) -> str:
    """A few words for why a connection failed, found along the exception's causes."""
    errors = urllib3.exceptions
    node: BaseException | None = exc
    for _ in range(8):  # the chain is short; bound the walk anyway
        if node is None:
            break
        if isinstance(node, ConnectionRefusedError):
            return "connection refused"
        if isinstance(node, errors.NameResolutionError):
            return "host name not resolved"
        if isinstance(node, errors.SSLError):
            return "TLS handshake failed"
        if isinstance(node, errors.ReadTimeoutError):
            return "read timed out"
        # NewConnectionError subclasses ConnectTimeoutError; only a real timeout counts.
        if isinstance(node, errors.ConnectTimeoutError) and not isinstance(node, errors.NewConnectionError):
            return "connection timed out"
        inner = getattr(node, "reason", None)
        node = inner if isinstance(inner, BaseException) else node.__cause__ or node.__context__
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    return "timed out" if "timed out" in text else type(exc).__name__
