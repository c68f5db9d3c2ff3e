"""The model registry over the versioned store: list, read and verify stored versions, and move the champion.

Every version under ``s3://<bucket>/<model>/`` is immutable and complete once its manifest exists (see
:mod:`boston_model.versions`). This module reads them without TensorFlow: the manifest, the model card and the
stored metrics are small JSON files. Moving the champion is serialised by a file lock (two promotions on one machine
take turns) and re-checked under the lock (a promotion that started from another champion than the one now recorded
refuses), so the record is never torn between two writers and its history never loses an entry.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boston_model.card import CARD_FILE
from boston_model.errors import BadInput
from boston_model.store import KeyNotFound, ObjectStore
from boston_model.versions import MANIFEST, METRICS_FILE, ModelLocation, read_champion, write_champion

HISTORY_LIMIT = 50  # earlier champions kept in the record, newest last (rollback walks back through them)
LOCK_TIMEOUT_S = 120.0  # a promotion (start, smoke test) takes seconds; a KServe rollout may take minutes


@dataclass(frozen=True)
class StoredVersion:
    """One stored version as its JSON files describe it (the model files themselves are not read)."""

    location: ModelLocation
    manifest: dict[str, Any]
    card: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def version(self) -> str:
        return self.location.version

    @property
    def created(self) -> str:
        return str(self.manifest.get("created", ""))


@dataclass(frozen=True)
class FileCheck:
    """One file of a version checked against its manifest entry."""

    path: str
    size: int | None
    sha256: str | None
    problem: str | None = None  # None = matches the manifest

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class ManifestCheck:
    """Every stored file of a version checked; ``ok`` only when all match and nothing is missing."""

    version: str
    files: list[FileCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.files) and all(f.ok for f in self.files)

    @property
    def first_problem(self) -> str | None:
        bad = next((f for f in self.files if not f.ok), None)
        return f"{bad.path}: {bad.problem}" if bad else None

    def verdict(self) -> str:
        if self.ok:
            return f"verified: all {len(self.files)} files match the manifest (sha256 and size)"
        bad = [f for f in self.files if not f.ok]
        return f"NOT verified: {len(bad)} of {len(self.files)} files do not match ({self.first_problem})"


def version_ids(store: ObjectStore, bucket: str, model_name: str) -> list[str]:
    """Versions whose upload completed (a manifest exists), newest first.

    Raises:
        StoreError: the store is unreachable or refuses the credentials.
    """
    if not store.bucket_exists(bucket):
        return []
    prefix = f"{model_name}/"
    found = {
        key[len(prefix):].split("/", 1)[0]
        for key in store.list_keys(bucket, prefix)
        if key.endswith("/" + MANIFEST) and key.count("/") == 2
    }
    # Version ids start with a UTC timestamp, so the lexical order is the time order.
    return sorted(found, reverse=True)


def resolve_version(known: list[str], given: str, champion: Mapping[str, Any] | None = None) -> str:
    """Turns what a user typed into a stored version id.

    Accepts the full id, a unique prefix, the 8-character content hash after the ``-``, or ``champion``.

    Raises:
        BadInput: unknown or ambiguous, naming the nearest stored versions.
    """
    given = given.strip()
    if given == "champion":
        if not champion:
            raise BadInput("there is no champion yet: promote a version first")
        return str(champion["version"])
    if given in known:
        return given
    matches = [v for v in known if v.startswith(given) or (len(given) >= 4 and v.split("-")[-1].startswith(given))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise BadInput(f"version {given!r} is ambiguous: it matches {', '.join(matches[:5])}")
    if not known:
        raise BadInput(f"unknown version {given!r}: no version is stored yet")
    near = difflib.get_close_matches(given, known, n=3, cutoff=0.3) or known[:3]
    raise BadInput(f"unknown version {given!r}; nearest stored: {', '.join(near)}")


def _get_json(store: ObjectStore, bucket: str, key: str, what: str) -> dict[str, Any]:
    import json

    try:
        data = store.get_json(bucket, key)
    except KeyNotFound:
        raise BadInput(f"{what} s3://{bucket}/{key} is missing") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{what} s3://{bucket}/{key} is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{what} s3://{bucket}/{key} is not a JSON object")
    return data


def read_version(store: ObjectStore, bucket: str, model_name: str, version: str) -> StoredVersion:
    """Reads a version's manifest, card and stored metrics (metrics are empty for versions stored without them)."""
    location = ModelLocation(bucket, model_name, version)
    manifest = _get_json(store, bucket, location.prefix + MANIFEST, "manifest")
    card = _get_json(store, bucket, location.prefix + CARD_FILE, "model card")
    metrics: dict[str, Any] = {}
    if METRICS_FILE in manifest.get("files", {}):
        metrics = _get_json(store, bucket, location.prefix + METRICS_FILE, "metrics")
    return StoredVersion(location, manifest, card, metrics)


def check_manifest(store: ObjectStore, location: ModelLocation) -> ManifestCheck:
    """Downloads every file the manifest lists and checks its size and sha256; lists files it does not list.

    Raises:
        BadInput: the manifest itself is missing or unreadable.
    """
    manifest = _get_json(store, location.bucket, location.prefix + MANIFEST, "manifest")
    entries = manifest.get("files")
    if not isinstance(entries, dict) or not entries:
        raise BadInput(f"manifest of {location.version} lists no files")
    checks = []
    for rel, entry in sorted(entries.items()):
        try:
            data = store.get_bytes(location.bucket, location.prefix + rel)
        except KeyNotFound:
            checks.append(FileCheck(rel, None, None, "listed in the manifest but missing"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        problem = None
        if len(data) != entry.get("size"):
            problem = f"{len(data)} bytes, the manifest says {entry.get('size')}"
        elif digest != entry.get("sha256"):
            problem = "sha256 differs from the manifest"
        checks.append(FileCheck(rel, len(data), digest, problem))
    listed = {location.prefix + rel for rel in entries} | {location.prefix + MANIFEST}
    for key in store.list_keys(location.bucket, location.prefix):
        if key not in listed and not key.endswith("/"):
            checks.append(FileCheck(key[len(location.prefix):], None, None, "stored but not in the manifest"))
    return ManifestCheck(location.version, checks)


def require_verified(store: ObjectStore, location: ModelLocation) -> ManifestCheck:
    """`check_manifest`, raising a one-line BadInput that names the first bad file."""
    check = check_manifest(store, location)
    if not check.ok:
        raise BadInput(f"version {location.version} does not verify: {check.first_problem}; nothing changed")
    return check


def lock_path(state: Path, bucket: str, model_name: str) -> Path:
    return Path(state) / "locks" / f"champion-{bucket}-{model_name}.lock"


@contextmanager
def champion_lock(state: Path, bucket: str, model_name: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Serialises champion moves of one model on this machine (a promotion holds it while it serves and records).

    Raises:
        BadInput: another promotion holds the lock for longer than ``timeout``.
    """
    from filelock import FileLock, Timeout

    path = lock_path(state, bucket, model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout:
        raise BadInput(f"another promotion of {model_name} has held {path} for {timeout:.0f} s; "
                            "nothing changed") from None


def same_champion(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two reads of the champion record are the same move (version and time)."""
    if a is None or b is None:
        return a is b
    return (a.get("version"), a.get("time")) == (b.get("version"), b.get("time"))


def history_after(previous: Mapping[str, Any] | None) -> list[str]:
    """The history a new record carries: the previous champion appended to its own history."""
    if not previous:
        return []
    history = [str(v) for v in previous.get("history") or []]
    return [*history, str(previous["version"])][-HISTORY_LIMIT:]


def move_champion(
    store: ObjectStore,
    location: ModelLocation,
    record: Mapping[str, Any],
    started_from: Mapping[str, Any] | None,
    history: list[str] | None = None,
) -> dict[str, Any]:
    """Writes the champion record, unless it moved since ``started_from`` was read (call under `champion_lock`).

    Args:
        store: The object store.
        location: The new champion.
        record: Fields of the record (metrics, endpoint, target …).
        started_from: The record this promotion read before it started serving.
        history: Earlier champions, newest last; default: ``started_from`` appended to its history.

    Raises:
        BadInput: another writer moved the champion meanwhile (nothing is written).
    """
    now = read_champion(store, location.bucket, location.name)
    if not same_champion(now, started_from):
        moved = now["version"] if now else "nothing"
        raise BadInput(f"the champion record moved to {moved} during this promotion; it was left as it is")
    return write_champion(store, location, {
        **record,
        "previous": started_from["version"] if started_from else None,
        "history": history_after(started_from) if history is None else history[-HISTORY_LIMIT:],
    })
