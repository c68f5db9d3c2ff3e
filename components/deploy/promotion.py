"""Promote a stored version (or roll back to the previous champion) through the existing deploy targets.

Order, for both targets: verify every file of the version against its manifest, serve it, smoke-test the live
endpoint with the card's probe rows, and only then move the champion record (under the champion lock, re-checked).
Any failure before the last step leaves the previous champion serving and recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from boston_model.card import EQUALITY_ATOL, linear_model_from_card
from boston_model.store import ObjectStore
from boston_model.versions import ModelLocation, read_champion
from components.common.ports import free_port
from components.common.registry import (
    RegistryError,
    StoredVersion,
    champion_lock,
    move_champion,
    read_version,
    require_verified,
)
from components.deploy import local
from components.deploy.errors import DeployError


@dataclass(frozen=True)
class Promotion:
    """A finished promotion: which version served before and which serves now, and where."""

    before: str | None
    after: str
    endpoint: str
    champion: dict[str, Any]


def verified_version(store: ObjectStore, bucket: str, model_name: str, version: str) -> StoredVersion:
    """Checks every stored file of ``version`` against its manifest and proves its card folds (one-line errors)."""
    location = ModelLocation(bucket, model_name, version)
    require_verified(store, location)
    stored = read_version(store, bucket, model_name, version)
    linear_model_from_card(stored.card)  # raises ModelLoadError naming the problem
    return stored


def probe_rows(stored: StoredVersion) -> tuple[np.ndarray, np.ndarray]:
    """The card's probe rows and the SavedModel's recorded outputs: what a live endpoint must answer."""
    probe = stored.card["probe"]
    return np.asarray(probe["inputs"], dtype=np.float64), np.asarray(probe["savedmodel_outputs"], dtype=np.float64)


def _record_fields(stored: StoredVersion, endpoint: str, target: str, **extra: Any) -> dict[str, Any]:
    return {
        "metrics": dict(stored.metrics),
        "feature_names": list(stored.card["feature_names"]),
        "manifest_files": len(stored.manifest.get("files", {})),
        "endpoint": endpoint,
        "target": target,
        **extra,
    }


def _refuse_current(previous: dict[str, Any] | None, version: str) -> None:
    if previous and previous.get("version") == version:
        raise RegistryError(f"{version} is already the champion; nothing changed")


def promote_local(
    store: ObjectStore,
    bucket: str,
    model_name: str,
    version: str,
    state: Path,
    host: str,
    port: int,
    history: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> Promotion:
    """Serves ``version`` with the local predictor on ``host:port`` and makes it champion.

    The version is first tried on a spare port, so a version that fails its smoke test never interrupts the one
    serving; only then is the predictor on ``port`` replaced (and put back if the replacement fails).

    Args:
        store: The model store.
        bucket: Its bucket.
        model_name: The model.
        version: The stored version to promote.
        state: The local state folder (serving records, champion lock).
        host: Loopback address to bind.
        port: The port the local predictor serves on.
        history: Champion history for the new record (rollback passes the shortened one).
        log: Progress lines.

    Raises:
        RegistryError: unknown version, bad manifest, already champion, record moved meanwhile.
        DeployError: the version failed to start or to answer its smoke test (nothing changed).
    """
    stored = verified_version(store, bucket, model_name, version)
    location = stored.location
    rows, expected = probe_rows(stored)
    # The predictor fetches the version itself, with the same store settings (never on its command line).
    env = {**os.environ, **store.settings.to_env()}
    with champion_lock(state, bucket, model_name):
        previous = read_champion(store, bucket, model_name)
        _refuse_current(previous, version)
        keeps = f"champion {previous['version']} keeps serving and stays champion" if previous else \
            "the champion record is unchanged"
        trial_port = free_port(host)
        try:
            trial = local.start_predictor(state, model_name, location.uri, host, trial_port, env)
            local.smoke_test(trial.url, model_name, rows, expected, atol=EQUALITY_ATOL)
        except DeployError as exc:
            raise DeployError(f"{version} failed its trial on port {trial_port}: {exc}; {keeps}") from None
        finally:
            local.stop_served(state, trial_port)
        log(f"trial passed on port {trial_port}; replacing the predictor on {host}:{port}")
        local.stop_served(state, port)
        try:
            served = local.start_predictor(state, model_name, location.uri, host, port, env)
            diff = local.smoke_test(served.url, model_name, rows, expected, atol=EQUALITY_ATOL)
        except DeployError as exc:
            local.stop_served(state, port)
            if previous:
                local.start_predictor(state, model_name, str(previous["uri"]), host, port, env)
            raise DeployError(f"{exc}; {keeps}") from None
        log(f"smoke test passed on {served.url} (max |diff| {diff:.2g} over {len(rows)} probe rows)")
        champion = move_champion(store, location, _record_fields(stored, served.url, "local"), previous, history)
    return Promotion(previous["version"] if previous else None, version, served.url, champion)


def promote_kserve(
    store: ObjectStore,
    bucket: str,
    model_name: str,
    version: str,
    options: Any,
    isvcs: Any,
    ready_timeout_s: float,
    state: Path,
    history: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> Promotion:
    """Points the InferenceService at ``version`` through the deploy step's builder, waits, smoke-tests, records.

    Args:
        options: `kserve_target.ServingOptions` (namespace, runtime, resources …).
        isvcs: `kserve_api.InferenceServices` of ``options.namespace``.
        ready_timeout_s: How long the rollout may take.
        Other arguments as for `promote_local`.

    Raises:
        KServeDeployError: the rollout or the smoke test failed; the previous spec is put back.
    """
    from components.deploy import kserve_spec, kserve_target

    stored = verified_version(store, bucket, model_name, version)
    location = stored.location
    rows, expected = probe_rows(stored)
    builder = options.builder_kwargs()
    isvc = kserve_spec.build_inference_service(model_name, storage_uri=location.uri,
                                               trained_tf_version=stored.card.get("tensorflow_version"), **builder)
    manifest = kserve_spec.to_manifest(isvc)
    with champion_lock(state, bucket, model_name):
        previous = read_champion(store, bucket, model_name)
        _refuse_current(previous, version)
        rollout = kserve_target.roll_out(isvcs, manifest, rows, expected, ready_timeout_s,
                                         options.canary_traffic_percent, log, EQUALITY_ATOL)
        log(f"smoke test passed on {rollout.smoke_url} (max |diff| {rollout.max_diff:.2g} over {len(rows)} "
            "probe rows)")
        fields = _record_fields(stored, rollout.endpoint, "kserve",
                                inference_service=f"{isvcs.namespace}/{model_name}", generation=rollout.generation,
                                runtime=options.runtime)
        champion = move_champion(store, location, fields, previous, history)
    return Promotion(previous["version"] if previous else None, version, rollout.endpoint, champion)


def rollback_target(champion: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The version a rollback promotes (the newest earlier champion) and the history the new record keeps.

    Raises:
        RegistryError: no champion, or no earlier champion recorded.
    """
    if not champion:
        raise RegistryError("there is no champion to roll back from; nothing changed")
    if "history" in champion:
        history = [str(v) for v in champion["history"] or []]
    else:  # a record written before the history existed
        history = [str(champion["previous"])] if champion.get("previous") else []
    if not history:
        raise RegistryError(f"champion {champion['version']} has no earlier champion to roll back to; nothing changed")
    return history[-1], history[:-1]
