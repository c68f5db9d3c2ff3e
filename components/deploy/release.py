"""The one release: serve a stored version on a target and make it champion, with one guarantee on every target.

``release`` is what the deploy step, ``boston-pipeline models promote`` and ``models rollback`` all do:

1. verify every stored file of the version against its manifest, and that its card folds;
2. under the champion lock, check that the champion is still the one the gate compared against;
3. start the version *beside* what serves (`Target.start`: ready on a private address), and smoke-test it there;
4. switch traffic to it (`Target.switch`), move the champion record, then stop what served before (`Target.retire`).

Any failure before the switch stops the candidate: nothing serving changes and the champion stays. A failure after
it switches back (`Target.switch_back`) before the error is raised. Targets (`process`, `container`, `kserve`)
implement the four steps; nothing else of a release is written twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import requests

from boston_model.card import EQUALITY_ATOL, linear_model_from_card
from boston_model.errors import BadInput, OneLineError, ReleaseFailed
from boston_model.store import ObjectStore
from boston_model.versions import METRICS_FILE, ModelLocation, new_version, push_version, read_champion
from components.common.registry import (
    HISTORY_LIMIT,
    StoredVersion,
    champion_lock,
    move_champion,
    read_version,
    require_verified,
)
from components.deploy.serving import ServingSettings

SMOKE_ROWS = 5
UNCHECKED = object()  # `release(expected_champion=UNCHECKED)`: no gate to honour (a promote by hand)


@dataclass(frozen=True)
class Candidate:
    """A version started beside what serves: ``url`` reaches it alone (the smoke test's address)."""

    url: str
    handle: Any


class Target(Protocol):
    """Where versions are served. One instance serves one model on one endpoint."""

    name: str
    endpoint: str  # where clients call, after a switch

    def start(self, stored: StoredVersion) -> Candidate:
        """Serves ``stored`` beside what serves now and waits until it is ready (ReleaseFailed otherwise)."""

    def switch(self, candidate: Candidate) -> Any:
        """Moves the endpoint's traffic to ``candidate``; returns what served before (for `retire`/`switch_back`)."""

    def switch_back(self, previous: Any, candidate: Candidate) -> str | None:
        """Undoes `switch`: ``previous`` takes the traffic again and ``candidate`` is stopped (what was done)."""

    def stop(self, candidate: Candidate) -> str | None:
        """Stops a candidate that never took traffic; may say what was done, in a few words."""

    def retire(self, previous: Any) -> None:
        """Stops what served before the switch (in-flight requests finish)."""

    def record(self) -> dict[str, Any]:
        """Target-specific fields of the champion record (e.g. the InferenceService and its generation)."""

    def check(self, card: Mapping[str, Any]) -> None:
        """Fails before anything is uploaded if the target cannot serve (a bad setting, an unreachable API)."""


@dataclass(frozen=True)
class Smoke:
    """What the live candidate must answer: ``rows`` -> ``expected`` within ``atol``."""

    rows: np.ndarray
    expected: np.ndarray
    atol: float
    source: str  # whose numbers: "evaluate's" or "the card's probe outputs"

    @classmethod
    def from_predictions(cls, predictions: pd.DataFrame, feature_names: list[str], n: int = SMOKE_ROWS,
                         atol: float = 1e-5) -> Smoke:
        """The first ``n`` test rows and evaluate's predictions for them (float64 against float64)."""
        head = predictions.head(n)
        return cls(head[feature_names].to_numpy(dtype=np.float64), head["prediction"].to_numpy(dtype=np.float64),
                   atol, "evaluate's")

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> Smoke:
        """The card's probe rows and the SavedModel's recorded outputs (float32) for them."""
        probe = card["probe"]
        return cls(np.asarray(probe["inputs"], dtype=np.float64),
                   np.asarray(probe["savedmodel_outputs"], dtype=np.float64), EQUALITY_ATOL, "the card's probe outputs")


@dataclass(frozen=True)
class Released:
    """A finished release: which version served before, which serves now, and where."""

    before: str | None
    version: str
    model_uri: str
    endpoint: str
    champion: dict[str, Any]


def store_version(store: ObjectStore, bucket: str, model_name: str, model_dir: Path,
                  metrics: Mapping[str, Any] | None = None) -> ModelLocation:
    """Uploads a model folder as a new immutable version (with its metrics); the manifest is written last."""
    location = ModelLocation(bucket, model_name, new_version(Path(model_dir)))
    push_version(store, location, Path(model_dir), {METRICS_FILE: dict(metrics)} if metrics is not None else None)
    return location


def deploy(store: ObjectStore, bucket: str, model_name: str, model_dir: Path, metrics: Mapping[str, Any],
           target: Target, settings: ServingSettings, smoke: Smoke, expected_champion: Any = UNCHECKED,
           lock_dir: Path | None = None, log: Callable[[str], None] = print) -> Released:
    """The deploy step: check the target, store the folder as a new version, release it (see `release`)."""
    from boston_model.card import read_card

    target.check(read_card(Path(model_dir)))
    if expected_champion is not UNCHECKED:  # refuse before uploading; `release` checks again under the lock
        if moved := _champion_moved(read_champion(store, bucket, model_name), expected_champion):
            raise ReleaseFailed(moved)
    location = store_version(store, bucket, model_name, Path(model_dir), metrics)
    log(f"stored {location.uri}")
    return release(store, location, target, settings, smoke, expected_champion=expected_champion,
                   lock_dir=lock_dir, log=log)


def verified_version(store: ObjectStore, location: ModelLocation) -> StoredVersion:
    """Checks every stored file of a version against its manifest and proves its card folds (one-line errors)."""
    require_verified(store, location)
    stored = read_version(store, location.bucket, location.name, location.version)
    linear_model_from_card(stored.card)
    return stored


def v1_request(rows: np.ndarray) -> dict[str, Any]:
    """The smoke test's body: TensorFlow Serving's V1 REST row format, ``{"instances": [[13 numbers], ...]}``.

    V1 is the protocol both serving runtimes speak: KServe's TF Serving runtime (``kserve-tensorflow-serving``)
    declares only ``v1`` and ``grpc-v1``, so a ``tensorflow`` deploy is smoke-tested over V1, never V2
    (tests/kserve/test_tf_serving_contract.py feeds this body to the exported SavedModel as TF Serving reads it).
    """
    return {"instances": np.asarray(rows, dtype=np.float64).tolist()}


def predict_v1(url: str, model_name: str, rows: np.ndarray, timeout: float = 10.0) -> np.ndarray:
    """Calls the V1 predict endpoint (`v1_request`) and returns one prediction per row."""
    try:
        response = requests.post(f"{url}/v1/models/{model_name}:predict", json=v1_request(rows), timeout=timeout)
    except requests.ConnectionError:
        raise ReleaseFailed(f"cannot reach {url}: is the predictor running? (`boston-pipeline run` starts it)") \
            from None
    except requests.Timeout:
        raise ReleaseFailed(f"{url} did not answer within {timeout:g} s") from None
    if response.status_code != 200:
        try:
            reason = str(response.json().get("error") or response.text)
        except ValueError:
            reason = response.text
        raise ReleaseFailed(f"predict returned HTTP {response.status_code}: {reason[:200]}")
    return np.asarray(response.json()["predictions"], dtype=np.float64).reshape(-1)


def model_ready(url: str, model_name: str) -> bool:
    """Whether the predictor at ``url`` says ``model_name`` is ready (KServe's V1 model route); False if unreachable."""
    try:
        response = requests.get(f"{url}/v1/models/{model_name}", timeout=1)
        return response.status_code == 200 and response.json().get("ready") is True
    except (requests.RequestException, ValueError):
        return False


def smoke_test(url: str, model_name: str, smoke: Smoke) -> float:
    """Sends the smoke rows to ``url`` over V1; the largest |live - expected|, or ReleaseFailed beyond ``atol``."""
    got = predict_v1(url, model_name, smoke.rows)
    expected = np.asarray(smoke.expected, dtype=np.float64).reshape(-1)
    if got.shape != expected.shape:
        raise ReleaseFailed(f"smoke test: {got.shape[0]} predictions for {expected.shape[0]} rows")
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= smoke.atol:
        raise ReleaseFailed(f"smoke test: live predictions differ from {smoke.source} by {diff:.3g} "
                            f"(> {smoke.atol:g})")
    return diff


def _champion_moved(before: Mapping[str, Any] | None, expected: str | None) -> str | None:
    now = str(before["version"]) if before else None
    if now == expected:
        return None
    return (f"the champion moved from {expected or 'none'} to {now or 'none'} after the gate compared against it; "
            "nothing changed (run again to gate against the new champion)")


def release(
    store: ObjectStore,
    location: ModelLocation,
    target: Target,
    settings: ServingSettings,
    smoke: Smoke | None = None,
    *,
    expected_champion: Any = UNCHECKED,
    lock_dir: Path | None = None,
    history: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> Released:
    """Serves ``location`` on ``target`` and makes it champion (see the module docstring for the guarantee).

    Args:
        store: The model store.
        location: The stored version to serve.
        target: Where to serve it.
        settings: The serving settings it is served with (recorded with the champion; promote reuses them).
        smoke: What the live version must answer; default: the card's probe rows.
        expected_champion: The champion version the gate compared against (None: there was none); a champion that
            moved since refuses the release. `UNCHECKED` for a promote by hand.
        lock_dir: Folder of the champion lock (local runs: two releases on one machine take turns).
        history: Champion history for the new record (rollback passes the shortened one).
        log: Progress lines.

    Raises:
        BadInput: the version does not verify, or is already the champion.
        ReleaseFailed: the champion moved, or the version failed to start, answer or switch; what serves is
            unchanged (or was put back) and the message says so.
    """
    stored = verified_version(store, location)
    smoke = smoke or Smoke.from_card(stored.card)
    lock = champion_lock(lock_dir, location.bucket, location.name) if lock_dir else contextlib.nullcontext()
    with lock:
        before = read_champion(store, location.bucket, location.name)
        if expected_champion is not UNCHECKED and (moved := _champion_moved(before, expected_champion)):
            raise ReleaseFailed(moved)
        if before and before.get("version") == location.version:
            raise BadInput(f"{location.version} is already the champion; nothing changed")
        keeps = (f"champion {before['version']} keeps serving and stays champion" if before
                 else "the champion record is unchanged")
        try:
            candidate = target.start(stored)  # a target cleans up its own failed start
        except OneLineError as exc:
            raise type(exc)(f"{exc}; {keeps}") from None  # the same kind of error (e.g. ClusterRefused)
        with _undo(lambda: target.stop(candidate), f"; {keeps}"):
            diff = smoke_test(candidate.url, location.name, smoke)
        log(f"smoke test passed on {candidate.url} (max |diff| {diff:.2g} over {len(smoke.rows)} rows, against "
            f"{smoke.source})")
        with _undo(lambda: target.stop(candidate), f"; {keeps}"):
            previous = target.switch(candidate)
        with _undo(lambda: target.switch_back(previous, candidate), f"; switched back, {keeps}"):
            champion = move_champion(store, location, _record(stored, target, settings, before), before, history)
        target.retire(previous)
    log(f"{location.version} is champion, serving at {target.endpoint}")
    return Released(before["version"] if before else None, location.version, location.uri, target.endpoint,
                    champion)


@contextlib.contextmanager
def _undo(undo: Callable[[], str | None], said: str) -> Iterator[None]:
    """Runs ``undo`` if the block fails; an expected failure gains what undo did and ``said``, a bug keeps its
    traceback."""
    try:
        yield
    except BaseException as exc:
        try:
            done = undo()
            said = f"; {done}{said}" if done else said
        except OneLineError as again:
            said = f"{said}; undoing failed too: {again}"
        if isinstance(exc, OneLineError):
            raise ReleaseFailed(f"{exc}{said}") from None
        raise


def _record(stored: StoredVersion, target: Target, settings: ServingSettings,
            before: Mapping[str, Any] | None) -> dict[str, Any]:
    """The champion record's fields: what was served, where, and with which settings (kept per version)."""
    served_with = dict((before or {}).get("served_with") or {})
    served_with[stored.version] = settings.as_dict()
    keep = set(((before or {}).get("history") or [])[-HISTORY_LIMIT:]) | {stored.version}
    if before:
        keep.add(str(before["version"]))
    return {
        "metrics": dict(stored.metrics),
        "feature_names": list(stored.card["feature_names"]),
        "manifest_files": len(stored.manifest.get("files", {})),
        "endpoint": target.endpoint,
        "target": target.name,
        "serving": settings.as_dict(),
        "served_with": {v: s for v, s in served_with.items() if v in keep},
        **target.record(),
    }


def settings_for(champion: Mapping[str, Any] | None, version: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The serving settings a promote of ``version`` uses: what that version was served with (else what serves
    now), with ``overrides`` (flags) on top."""
    champion = champion or {}
    recorded = (champion.get("served_with") or {}).get(version) or champion.get("serving") or {}
    return {**recorded, **{k: v for k, v in overrides.items() if v is not None}}


def rollback_version(champion: Mapping[str, Any] | None) -> tuple[str, list[str]]:
    """The version a rollback promotes (the newest earlier champion) and the history the new record keeps.

    Raises:
        BadInput: no champion, or no earlier champion recorded.
    """
    if not champion:
        raise BadInput("there is no champion to roll back from; nothing changed")
    if "history" in champion:
        history = [str(v) for v in champion["history"] or []]
    else:  # a record written before the history existed
        history = [str(champion["previous"])] if champion.get("previous") else []
    if not history:
        raise BadInput(f"champion {champion['version']} has no earlier champion to roll back to; nothing changed")
    return history[-1], history[:-1]
