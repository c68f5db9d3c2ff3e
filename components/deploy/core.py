"""Deploy: store the model as an immutable version, serve it, smoke-test it, then move the champion record."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boston_model.store import ObjectStore
from boston_model.versions import (
    METRICS_FILE,
    ModelLocation,
    new_version,
    push_version,
    read_champion,
)
from components.common.registry import champion_lock, move_champion
from components.deploy import local
from components.deploy.errors import DeployError

SMOKE_ROWS = 5


@dataclass(frozen=True)
class DeployResult:
    """What a deploy produced."""

    endpoint: str
    model_uri: str
    version: str
    champion: dict[str, Any]


def smoke_rows(
    predictions: pd.DataFrame, feature_names: list[str], n: int = SMOKE_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test rows and evaluate's predictions for them."""
    head = predictions.head(n)
    return head[feature_names].to_numpy(dtype=np.float64), head["prediction"].to_numpy(dtype=np.float64)


def store_version(
    store: ObjectStore, bucket: str, model_name: str, model_dir: Path, metrics: Mapping[str, Any] | None = None
) -> tuple[ModelLocation, dict]:
    """Uploads the model under a new immutable version prefix (with its metrics); the manifest is written last."""
    location = ModelLocation(bucket, model_name, new_version(Path(model_dir)))
    extra = {METRICS_FILE: dict(metrics)} if metrics is not None else None
    return location, push_version(store, location, Path(model_dir), extra)


def deploy_local(
    store: ObjectStore,
    model_dir: Path,
    predictions: pd.DataFrame,
    feature_names: list[str],
    metrics: Mapping[str, Any],
    state: Path,
    bucket: str,
    model_name: str,
    host: str,
    port: int,
    log: Callable[[str], None] = print,
) -> DeployResult:
    """Stores, serves and smoke-tests the model on ``host:port``; promotes it to champion only on success.

    A second deploy replaces the served model: the old predictor is stopped, the new one started. If the new one
    fails to start or answers differently from evaluate, the previous champion is served again and the champion
    record is left untouched.
    """
    location, manifest = store_version(store, bucket, model_name, model_dir, metrics)
    log(f"stored {len(manifest['files'])} files under {location.uri}")
    previous = read_champion(store, bucket, model_name)
    replaced = local.stop_served(state, port)
    if replaced:
        log(f"stopped the predictor serving {replaced.uri}")
    rows, expected = smoke_rows(predictions, feature_names)
    try:
        served = local.start_predictor(state, model_name, location.uri, host, port)
        diff = local.smoke_test(served.url, model_name, rows, expected)
    except DeployError as exc:
        local.stop_served(state, port)
        if previous:
            log(f"rolling back: serving the champion {previous['version']} again")
            local.start_predictor(state, model_name, previous["uri"], host, port)
        raise DeployError(f"{exc}; the champion is unchanged") from None
    log(f"smoke test passed on {served.url} (max |diff| {diff:.2g} over {len(rows)} rows)")
    return promote(store, location, manifest, metrics, feature_names, previous, served.url, lock_state=state)


def promote(
    store: ObjectStore,
    location: ModelLocation,
    manifest: Mapping[str, Any],
    metrics: Mapping[str, Any],
    feature_names: list[str],
    previous: Mapping[str, Any] | None,
    endpoint: str,
    lock_state: Path | None = None,
    **extra: Any,
) -> DeployResult:
    """Moves the champion record to a version that is stored, served and smoke-tested (every target's last act).

    The record keeps the earlier champions (``history``) for rollback, and is not written if another promotion
    moved it since ``previous`` was read; with ``lock_state`` the move holds the champion lock of that state folder.
    """
    fields = {
        "metrics": dict(metrics),
        "feature_names": list(feature_names),
        "manifest_files": len(manifest["files"]),
        "endpoint": endpoint,
        **extra,
    }
    lock = champion_lock(lock_state, location.bucket, location.name) if lock_state else contextlib.nullcontext()
    with lock:
        champion = move_champion(store, location, fields, previous)
    return DeployResult(endpoint, location.uri, location.version, champion)
