"""The KServe deploy target: serve a stored model version as an InferenceService, prove it, then promote it.

The flow (`deploy_kserve`): push an immutable version to S3, build the InferenceService for it
(`kserve_spec.build_inference_service`, pure), create it or replace the live one, wait until the controller has
observed *that* generation and reports Ready (`kserve_status`), smoke-test the endpoint against evaluate's
predictions, and only then move the champion record. Any failure after the apply puts the previous spec back (or
deletes a first deployment). The API calls and their retries live in `kserve_api`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import urllib3
from kubernetes import client as k8s

from boston_model.card import EQUALITY_ATOL, read_card
from boston_model.store import ObjectStore
from boston_model.versions import read_champion
from components.deploy import local
from components.deploy.core import DeployResult, promote, smoke_rows, store_version
from components.deploy.errors import DeployError, KServeDeployError
from components.deploy.kserve_api import CONFLICT_ATTEMPTS, Conflict, InferenceServices
from components.deploy.kserve_spec import (
    API_VERSION,
    KIND,
    Resources,
    build_inference_service,
    manifest_yaml,
    to_manifest,
)
from components.deploy.kserve_status import failure_info, rollout_state, smoke_url_of

WATCH_WINDOW_S = 30  # one watch request; the wait re-reads the object between windows, so no event is missed


def _replacement(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """``desired``'s labels, annotations and spec over ``current``'s identity (resourceVersion, finalizers…)."""
    metadata = {k: v for k, v in (current.get("metadata") or {}).items() if k != "managedFields"}
    wanted = desired.get("metadata") or {}
    for key in ("labels", "annotations"):
        if wanted.get(key):
            metadata[key] = dict(wanted[key])
        else:
            metadata.pop(key, None)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": desired["spec"]}


def apply_inference_service(
    isvcs: InferenceServices, manifest: Mapping[str, Any], conflicts: int = CONFLICT_ATTEMPTS
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Creates the InferenceService, or replaces the live one; a 409 re-reads the object and tries again.

    Returns:
        ``(before, after)``: the object as it was (None if absent) and as the API server stored it.
    """
    name = manifest["metadata"]["name"]

    def once() -> tuple[dict[str, Any] | None, dict[str, Any]]:
        before = isvcs.get(name)
        if before is None:
            return None, isvcs.create(manifest)
        return before, isvcs.replace(name, _replacement(before, manifest))

    try:
        return isvcs.retry_conflicts(conflicts, log=True)(once)
    except Conflict as exc:
        raise KServeDeployError(f"{exc} (still conflicting after {conflicts} attempts)") from None


def wait_until_ready(
    isvcs: InferenceServices,
    name: str,
    generation: int,
    timeout_s: float,
    baseline_failure: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Waits until generation ``generation`` is Ready; fails fast on the InferenceService's own failure.

    Raises:
        KServeDeployError: a failure reported by KServe (its message), the object was deleted, or ``timeout_s``
            passed (with the last state seen).
    """
    what = f"{isvcs.describe(name)} generation {generation}"
    deadline = clock() + timeout_s
    obj = isvcs.get(name)
    while True:
        if obj is None:
            raise KServeDeployError(f"{what} was deleted while waiting for it")
        state = rollout_state(obj, generation, baseline_failure)
        if state.phase == "ready":
            return obj
        if state.phase == "failed":
            raise KServeDeployError(f"{what} failed: {state.detail}")
        remaining = deadline - clock()
        if remaining <= 0:
            raise KServeDeployError(f"{what} not Ready after {timeout_s:.0f} s: {state.detail}")
        resource_version = (obj.get("metadata") or {}).get("resourceVersion")
        window = max(1, math.ceil(min(remaining, WATCH_WINDOW_S)))
        events = isvcs.watch(name, resource_version, window)
        # Watch errors (expired resourceVersion, dropped connection) just end the window: the object is re-read
        # below, so nothing is lost but a little latency.
        with contextlib.suppress(k8s.ApiException, urllib3.exceptions.HTTPError, OSError), contextlib.closing(events):
            for kind, event_obj in events:
                obj = None if kind == "DELETED" else event_obj
                if obj is None or rollout_state(obj, generation, baseline_failure).phase != "pending":
                    break
        if obj is not None:
            obj = isvcs.get(name)


def roll_back(
    isvcs: InferenceServices, name: str, before: Mapping[str, Any] | None, timeout_s: float,
) -> str:
    """Puts the previous spec back (or deletes a first deployment); returns what was done, in a few words."""
    if before is None:
        isvcs.delete(name)
        return "deleted the new InferenceService (nothing was served before)"
    desired = {"metadata": before.get("metadata") or {}, "spec": before["spec"]}

    def once() -> tuple[dict[str, Any], dict[str, Any] | None]:
        current = isvcs.get(name)
        if current is None:
            identity = {k: v for k, v in desired["metadata"].items()
                        if k in ("name", "namespace", "labels", "annotations")}
            return isvcs.create({"apiVersion": API_VERSION, "kind": KIND, "metadata": identity,
                                 "spec": desired["spec"]}), current
        return isvcs.replace(name, _replacement(current, desired)), current

    try:
        restored, current = isvcs.retry_conflicts()(once)
    except Conflict:
        raise KServeDeployError("rollback kept conflicting") from None
    generation = int(restored["metadata"].get("generation") or 1)
    wait_until_ready(isvcs, name, generation, timeout_s, failure_info(current))
    return f"rolled back to the previous spec (generation {generation}, Ready)"


@dataclass(frozen=True)
class ServingOptions:
    """How to serve on KServe: everything `build_inference_service` takes besides name, URI and model card."""

    namespace: str
    runtime: str
    service_account: str
    resources: Resources
    min_replicas: int
    max_replicas: int
    canary_traffic_percent: int = 100
    istio_sidecar: bool = False
    runtime_version: str = ""
    predictor_image: str = ""

    def builder_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RollOut:
    """A rollout that is Ready and answered its smoke test.

    Attributes:
        generation: The generation that was applied and became Ready.
        endpoint: The URL people call (the external one when the status has it).
        smoke_url: The URL the smoke test reached.
        max_diff: The largest |live - expected| seen.
    """

    generation: int
    endpoint: str
    smoke_url: str
    max_diff: float


def roll_out(
    isvcs: InferenceServices,
    manifest: Mapping[str, Any],
    rows: np.ndarray,
    expected: np.ndarray,
    ready_timeout_s: float,
    canary_traffic_percent: int = 100,
    log: Callable[[str], None] = print,
    atol: float = EQUALITY_ATOL,
) -> RollOut:
    """Applies ``manifest``, waits for that generation to be Ready and smoke-tests it with ``rows``.

    The champion record is the caller's to move, after this returns.

    Raises:
        KServeDeployError: the rollout or the smoke test failed; the previous spec was put back (or a first
            deployment deleted), and the message says so.
    """
    name = manifest["metadata"]["name"]
    before, after = apply_inference_service(isvcs, manifest)
    generation = int(after["metadata"].get("generation") or 1)
    log(f"{'replaced' if before else 'created'} {isvcs.describe(name)} (generation {generation}); "
        f"waiting up to {ready_timeout_s:.0f} s for it to be Ready")
    try:
        ready = wait_until_ready(isvcs, name, generation, ready_timeout_s, failure_info(before))
        smoke_url = smoke_url_of(ready, canary_traffic_percent)
        diff = local.smoke_test(smoke_url, name, rows, expected, atol=atol)
    except DeployError as exc:
        try:
            done = roll_back(isvcs, name, before, ready_timeout_s)
        except KServeDeployError as rollback_exc:
            done = f"rollback failed too: {rollback_exc}"
        log(done)
        raise KServeDeployError(f"{exc}; {done}; the champion is unchanged") from None
    endpoint = str((ready.get("status") or {}).get("url") or smoke_url)
    return RollOut(generation, endpoint, smoke_url, diff)


def deploy_kserve(
    store: ObjectStore,
    model_dir: Path,
    predictions: pd.DataFrame,
    feature_names: list[str],
    metrics: Mapping[str, Any],
    bucket: str,
    model_name: str,
    options: ServingOptions,
    isvcs: InferenceServices,
    spec_path: Path,
    ready_timeout_s: float,
    log: Callable[[str], None] = print,
    atol: float = EQUALITY_ATOL,
) -> DeployResult:
    """Stores the model, serves it as an InferenceService, smoke-tests it, then promotes it to champion.

    On a failed rollout or smoke test the previous spec is put back and the champion record is left untouched.

    Args:
        store: Model store.
        model_dir: Trained model folder (SavedModel under ``1/`` and the model card).
        predictions: Evaluate's test rows with their ``prediction``.
        feature_names: Feature columns, in the model's order.
        metrics: Evaluate's metrics (recorded with the champion).
        bucket: Bucket of the model store.
        model_name: Model name: S3 prefix, InferenceService name and served name.
        options: Namespace, runtime and the rest of the serving spec.
        isvcs: The InferenceServices API of ``options.namespace``.
        spec_path: Where to write the applied InferenceService as YAML.
        ready_timeout_s: How long a rollout may take to become Ready.
        log: Progress lines.
        atol: Largest accepted |live - evaluate| (float32 serving against float64 evaluation).

    Raises:
        KServeDeployError: One line saying what failed and what was rolled back.
    """
    card = read_card(Path(model_dir))
    # A dry build checks the options before anything is uploaded: a bad option must not leave a stray version.
    build_inference_service(
        model_name, storage_uri=f"s3://dry-run/{model_name}/0/", trained_tf_version=card.get("tensorflow_version"),
        **options.builder_kwargs(),
    )
    # Likewise an unreachable API or a missing permission shows before the upload.
    isvcs.get(model_name)
    location, manifest_files = store_version(store, bucket, model_name, Path(model_dir), metrics)
    log(f"stored {len(manifest_files['files'])} files under {location.uri}")
    isvc = build_inference_service(
        model_name, storage_uri=location.uri, trained_tf_version=card.get("tensorflow_version"),
        **options.builder_kwargs(),
    )
    manifest = to_manifest(isvc)
    Path(spec_path).parent.mkdir(parents=True, exist_ok=True)
    Path(spec_path).write_text(manifest_yaml(manifest))
    previous = read_champion(store, bucket, model_name)
    rows, expected = smoke_rows(predictions, feature_names)

    rollout = roll_out(isvcs, manifest, rows, expected, ready_timeout_s, options.canary_traffic_percent, log, atol)
    log(f"smoke test passed on {rollout.smoke_url} (max |diff| {rollout.max_diff:.2g} over {len(rows)} rows)")
    return promote(
        store, location, manifest_files, metrics, feature_names, previous, rollout.endpoint, target="kserve",
        inference_service=f"{isvcs.namespace}/{model_name}", generation=rollout.generation, runtime=options.runtime,
    )
