"""Versioned model storage in S3: immutable version prefixes, a manifest written last, a champion record moved last.

Layout under ``s3://<bucket>/<model-name>/``::

    <version>/1/saved_model.pb …      the SavedModel (KServe TensorFlow runtime layout)
    <version>/boston_model.json       the folded model card
    <version>/metrics.json            the evaluation metrics the version passed the gate with
    <version>/manifest.json           sha256 and size of every file above; written last, so its presence means
                                      the upload is complete
    champion.json                     the version being served, its metrics and time; moved only after the new
                                      version is uploaded and answered a smoke test
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boston_model.errors import BadInput
from boston_model.store import KeyNotFound, ObjectStore, StoreError, parse_s3_uri, sha256_file

MANIFEST = "manifest.json"
CHAMPION = "champion.json"
METRICS_FILE = "metrics.json"  # the evaluation a version passed, stored with it (the registry lists it)


@dataclass(frozen=True)
class ModelLocation:
    """Where a model version lives: ``s3://bucket/<name>/<version>/``."""

    bucket: str
    name: str
    version: str

    @property
    def prefix(self) -> str:
        return f"{self.name}/{self.version}/"

    @property
    def uri(self) -> str:
        # The trailing slash matters: KServe's storage initializer copies everything under a prefix, and
        # "boston" without it would also match "boston-v2".
        return f"s3://{self.bucket}/{self.prefix}"


def build_manifest(model_dir: Path, version: str) -> dict[str, Any]:
    """Lists every file under ``model_dir`` with its sha256 and size (sorted, POSIX relative paths)."""
    model_dir = Path(model_dir)
    files = {}
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(model_dir).as_posix()
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    if not files:
        raise BadInput(f"model folder {model_dir} is empty")
    return {"version": version, "files": files, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def new_version(model_dir: Path, now: float | None = None) -> str:
    """A sortable, content-addressed version id: ``20261125T101500Z-<first 8 of the model card sha256>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    card = Path(model_dir) / "boston_model.json"
    return f"{stamp}-{sha256_file(card)[:8]}"


def push_version(
    store: ObjectStore, location: ModelLocation, model_dir: Path, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Uploads ``model_dir`` under the version prefix, then the manifest; refuses to overwrite a version.

    Args:
        store: The object store.
        location: Where the version goes.
        model_dir: The model folder.
        extra: JSON documents stored beside the model files and listed in the manifest like them (e.g.
            ``metrics.json``: the evaluation the version passed), keyed by file name.

    Returns:
        The manifest written.
    """
    store.ensure_bucket(location.bucket)
    if store.list_keys(location.bucket, location.prefix):
        raise StoreError(f"{location.uri} already exists; versions are immutable")
    manifest = build_manifest(Path(model_dir), location.version)
    for rel in manifest["files"]:
        store.upload_file(location.bucket, location.prefix + rel, Path(model_dir) / rel)
    for rel, document in (extra or {}).items():
        data = json_bytes(document)
        store.put_bytes(location.bucket, location.prefix + rel, data, content_type="application/json")
        manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    store.put_json(location.bucket, location.prefix + MANIFEST, manifest)
    return manifest


def fetch_version(store: ObjectStore, uri: str, dest: Path) -> dict[str, Any]:
    """Downloads a version by its manifest and verifies every file's size and sha256.

    Args:
        store: The object store.
        uri: ``s3://bucket/<name>/<version>/``.
        dest: Local folder to fill (created).

    Raises:
        BadInput: no manifest (an incomplete upload), a missing file, or a size/checksum mismatch.
    """
    bucket, prefix = parse_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/"
    try:
        manifest = store.get_json(bucket, prefix + MANIFEST)
    except KeyNotFound:
        raise BadInput(f"{uri} has no {MANIFEST}: the upload is incomplete or the URI is wrong") from None
    dest = Path(dest)
    for rel, _entry in manifest["files"].items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.download_file(bucket, prefix + rel, target)
        except KeyNotFound:
            raise BadInput(f"{uri}{rel} is listed in the manifest but missing") from None
    verify_manifest(dest, manifest)
    return manifest


def verify_manifest(model_dir: Path, manifest: dict[str, Any]) -> None:
    """Checks every manifest entry against the files in ``model_dir``."""
    for rel, entry in manifest["files"].items():
        path = Path(model_dir) / rel
        if not path.is_file():
            raise BadInput(f"{rel} is missing")
        size = path.stat().st_size
        if size != entry["size"]:
            raise BadInput(f"{rel} has {size} bytes, the manifest says {entry['size']}")
        if sha256_file(path) != entry["sha256"]:
            raise BadInput(f"{rel} does not match its sha256 in the manifest")


def read_champion(store: ObjectStore, bucket: str, name: str) -> dict[str, Any] | None:
    """The current champion record, or None when no model has been promoted yet (or the bucket is new)."""
    if not store.bucket_exists(bucket):
        return None
    try:
        return store.get_json(bucket, f"{name}/{CHAMPION}")
    except KeyNotFound:
        return None


def write_champion(store: ObjectStore, location: ModelLocation, record: dict[str, Any]) -> dict[str, Any]:
    """Moves the champion pointer to ``location`` (a single PUT: readers see the old or the new record)."""
    full = {
        "version": location.version,
        "uri": location.uri,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **record,
    }
    store.put_json(location.bucket, f"{location.name}/{CHAMPION}", full)
    return full


def json_bytes(data: Any) -> bytes:
    """The bytes `ObjectStore.put_json` writes (indented, key-sorted)."""
    return json.dumps(data, indent=2, sort_keys=True).encode()


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + os.linesep
