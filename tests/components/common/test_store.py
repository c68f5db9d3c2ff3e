"""ObjectStore against a real embedded server; settings and URI parsing as pure functions."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from boston_model.errors import BadInput
from boston_model.store import (
    KeyNotFound,
    ObjectStore,
    S3Settings,
    StoreError,
    parse_s3_uri,
    sha256_file,
)


@pytest.fixture
def bucket(store: ObjectStore) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    assert store.ensure_bucket(name) is True
    return name


def _assert_one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message
    assert "\n" not in message
    return message


# --- round trips --------------------------------------------------------------------


def test_bytes_json_round_trip(store: ObjectStore, bucket: str) -> None:
    store.put_bytes(bucket, "raw/data.bin", b"\x00\x01payload", content_type="application/x-test")
    store.put_json(bucket, "meta/run.json", {"rmse": 4.2, "features": ["rm", "lstat"]})

    assert store.get_bytes(bucket, "raw/data.bin") == b"\x00\x01payload"
    assert store.get_json(bucket, "meta/run.json") == {"rmse": 4.2, "features": ["rm", "lstat"]}


def test_exists_and_list_keys(store: ObjectStore, bucket: str) -> None:
    for key in ("runs/a/model.keras", "runs/a/metrics.json", "runs/b/model.keras", "other.txt"):
        store.put_bytes(bucket, key, key.encode())

    assert store.exists(bucket, "runs/a/metrics.json")
    assert not store.exists(bucket, "runs/a/missing.json")
    assert store.list_keys(bucket, "runs/a/") == ["runs/a/metrics.json", "runs/a/model.keras"]
    assert store.list_keys(bucket) == [
        "other.txt",
        "runs/a/metrics.json",
        "runs/a/model.keras",
        "runs/b/model.keras",
    ]
    assert store.list_keys(bucket, "nothing/") == []


def test_ensure_bucket_is_idempotent(store: ObjectStore, bucket: str) -> None:
    assert store.ensure_bucket(bucket) is False


def test_upload_download_file_keeps_bytes(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"crim,zn,medv\n" * 1000)
    store.upload_file(bucket, "data/in.csv", source, content_type="text/csv")

    target = store.download_file(bucket, "data/in.csv", tmp_path / "out" / "copy.csv")

    assert target == tmp_path / "out" / "copy.csv"
    assert sha256_file(target) == sha256_file(source)
    assert [p.name for p in target.parent.iterdir()] == ["copy.csv"]  # no partial file left


def test_check_tells_the_right_keys_from_wrong_ones(store: ObjectStore, s3_server: S3Settings) -> None:
    assert store.check() is None  # the right keys: no error
    wrong = ObjectStore(dataclasses.replace(s3_server, secret_key=s3_server.secret_key + "x"))
    with pytest.raises(StoreError, match="rejected the credentials"):
        wrong.check()


# --- errors -------------------------------------------------------------------------


def test_missing_key_is_key_not_found(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(KeyNotFound) as raised:
        store.get_bytes(bucket, "no/such.json")
    message = _assert_one_line(raised.value)
    assert f"s3://{bucket}/no/such.json" in message

    target = tmp_path / "never.bin"
    with pytest.raises(KeyNotFound) as raised:
        store.download_file(bucket, "no/such.bin", target)
    assert f"s3://{bucket}/no/such.bin" in _assert_one_line(raised.value)
    assert not target.exists()


def test_missing_bucket_is_named(store: ObjectStore, s3_server: S3Settings) -> None:
    missing = f"absent-{uuid.uuid4().hex[:12]}"
    for call in (lambda: store.get_bytes(missing, "k"), lambda: store.list_keys(missing)):
        with pytest.raises(StoreError) as raised:
            call()
        assert not isinstance(raised.value, KeyNotFound)
        message = _assert_one_line(raised.value)
        assert missing in message
        assert s3_server.endpoint in message
    assert store.exists(missing, "k") is False


@pytest.mark.parametrize("field", ["secret_key", "access_key"])
def test_wrong_credentials_name_endpoint_not_secret(s3_server: S3Settings, field: str) -> None:
    wrong = dataclasses.replace(s3_server, **{field: "WRONG" + uuid.uuid4().hex})

    with pytest.raises(StoreError) as raised:
        ObjectStore(wrong).check()

    message = _assert_one_line(raised.value)
    assert message.startswith(f"S3 endpoint {s3_server.endpoint} rejected the credentials")
    assert "MINIO_ACCESS_KEY / MINIO_SECRET_KEY" in message
    assert wrong.secret_key not in message
    assert s3_server.secret_key not in message


def test_unreachable_endpoint_fails_fast(free_port, sleeps) -> None:
    port = free_port()  # just released, so nothing listens there
    settings = S3Settings(endpoint=f"127.0.0.1:{port}", access_key="ak", secret_key="sk-secret")

    with pytest.raises(StoreError) as raised:
        ObjectStore(settings).check()

    assert str(raised.value) == (
        f"cannot reach S3 endpoint 127.0.0.1:{port} (connection refused): "
        "check MINIO_ENDPOINT and that the server is running"
    )
    assert sum(sleeps) < 1  # no backoff between retries of a refused connection


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP port that accepts connections and never answers, like a hung server; and the connections it took."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        for _ in range(1000):  # bounded: ~200 s at most, normally stopped in seconds
            if stop.is_set():
                return
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_silent_endpoint_times_out(silent_server: tuple[int, list[socket.socket]], sleeps: list[float]) -> None:
    port, accepted = silent_server
    settings = S3Settings(endpoint=f"127.0.0.1:{port}", access_key="ak", secret_key="sk")

    with pytest.raises(StoreError) as raised:
        ObjectStore(settings, read_timeout=1.0).check()

    assert "(read timed out)" in _assert_one_line(raised.value)
    # one attempt and its one retry, each one read timeout, no backoff (a wall-clock bound would measure the machine)
    assert len(accepted) == 2 and sum(sleeps) < 1


def test_store_error_is_one_line() -> None:
    assert str(StoreError("first\nsecond\t third ")) == "first second third"


# --- settings -----------------------------------------------------------------------

KEYS = {"MINIO_ACCESS_KEY": "ak", "MINIO_SECRET_KEY": "sk-very-secret"}


def test_repr_hides_keys() -> None:
    settings = S3Settings("minio:9000", access_key="AKIAEXAMPLE", secret_key="sk-very-secret")

    for text in (repr(settings), str(settings), f"{settings}", repr(ObjectStore(settings))):
        assert "sk-very-secret" not in text
        assert "AKIAEXAMPLE" not in text
        assert "minio:9000" in text


@pytest.mark.parametrize(
    ("env", "endpoint", "secure", "region"),
    [
        ({"MINIO_ENDPOINT": "minio:9000"}, "minio:9000", False, "us-east-1"),
        ({"MINIO_ENDPOINT": "http://minio:9000"}, "minio:9000", False, "us-east-1"),
        ({"MINIO_ENDPOINT": "https://s3.example.com/"}, "s3.example.com", True, "us-east-1"),
        ({"MINIO_ENDPOINT": "minio:9000", "MINIO_SECURE": "yes"}, "minio:9000", True, "us-east-1"),
        ({"MINIO_ENDPOINT": "minio:9000", "MINIO_SECURE": "TRUE"}, "minio:9000", True, "us-east-1"),
        ({"MINIO_ENDPOINT": "minio:9000", "MINIO_SECURE": "0"}, "minio:9000", False, "us-east-1"),
        # The scheme is the more specific statement, so it wins over MINIO_SECURE.
        ({"MINIO_ENDPOINT": "http://m:9000", "MINIO_SECURE": "1"}, "m:9000", False, "us-east-1"),
        ({"MINIO_ENDPOINT": " minio:9000 ", "MINIO_REGION": "eu-west-1"}, "minio:9000", False, "eu-west-1"),
    ],
)
def test_from_env(env: dict[str, str], endpoint: str, secure: bool, region: str) -> None:
    settings = S3Settings.from_env({**env, **KEYS})

    assert settings == S3Settings(endpoint, "ak", "sk-very-secret", secure=secure, region=region)


@pytest.mark.parametrize("env", [{}, {"MINIO_ENDPOINT": ""}, {"MINIO_ENDPOINT": "  "}, KEYS])
def test_from_env_without_endpoint_is_none(env: dict[str, str]) -> None:
    assert S3Settings.from_env(env) is None


def test_from_env_missing_secret_names_it() -> None:
    env = {"MINIO_ENDPOINT": "minio:9000", "MINIO_ACCESS_KEY": "ak"}

    with pytest.raises(StoreError) as raised:
        S3Settings.from_env(env)

    message = _assert_one_line(raised.value)
    assert "minio:9000" in message
    assert "MINIO_SECRET_KEY" in message


@pytest.mark.parametrize("endpoint", ["ftp://minio:9000", "http://minio:9000/bucket", "http://"])
def test_from_env_rejects_malformed_endpoint(endpoint: str) -> None:
    with pytest.raises(StoreError) as raised:
        S3Settings.from_env({"MINIO_ENDPOINT": endpoint, **KEYS})
    _assert_one_line(raised.value)


@pytest.mark.parametrize("secure", [True, False])
def test_to_env_round_trips(secure: bool) -> None:
    settings = S3Settings("minio:9000", "ak", "sk", secure=secure, region="eu-central-1")

    assert S3Settings.from_env(settings.to_env()) == settings


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIO_ENDPOINT", "https://minio.local:9443")
    monkeypatch.setenv("MINIO_ACCESS_KEY", "ak")
    monkeypatch.setenv("MINIO_SECRET_KEY", "sk")

    settings = S3Settings.from_env()

    assert settings is not None
    assert (settings.endpoint, settings.secure, settings.url) == (
        "minio.local:9443",
        True,
        "https://minio.local:9443",
    )


# --- URIs and hashing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key.json", ("bucket", "key.json")),
        ("minio://mlpipeline/v2/artifacts/run/train/model", ("mlpipeline", "v2/artifacts/run/train/model")),
        ("S3://bucket/a/", ("bucket", "a/")),
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["gs://bucket/key", "s3://bucket", "s3://bucket/", "s3:///key", "bucket/key", ""])
def test_parse_s3_uri_rejects(uri: str) -> None:
    with pytest.raises(BadInput, match="expected s3://bucket/key"):
        parse_s3_uri(uri)


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 9000  # larger than one read chunk
    path.write_bytes(data)

    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
