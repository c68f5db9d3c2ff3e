"""The KServe deploy target: serve a stored model version as an InferenceService, prove it, then promote it.

`KServeTarget` is the release's target for a cluster (`components.deploy.release`): build the InferenceService for
a version (`kserve_spec.build_inference_service`, pure), create it or replace the live one, wait until the controller
has observed *that* generation and reports Ready (`kserve_status`). Undoing puts the previous spec back (or deletes a
first deployment). The API calls and their retries live in `kserve_api`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s

from boston_model.errors import OneLineError, ReleaseFailed
from components.common.registry import StoredVersion
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
from components.deploy.release import Candidate
from components.deploy.serving import ServingSettings

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
        raise ReleaseFailed(f"{exc} (still conflicting after {conflicts} attempts)") from None


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
        ReleaseFailed: a failure reported by KServe (its message), the object was deleted, or ``timeout_s``
            passed (with the last state seen).
    """
    what = f"{isvcs.describe(name)} generation {generation}"
    deadline = clock() + timeout_s
    obj = isvcs.get(name)
    while True:
        if obj is None:
            raise ReleaseFailed(f"{what} was deleted while waiting for it")
        state = rollout_state(obj, generation, baseline_failure)
        if state.phase == "ready":
            return obj
        if state.phase == "failed":
            raise ReleaseFailed(f"{what} failed: {state.detail}")
        remaining = deadline - clock()
        if remaining <= 0:
            raise ReleaseFailed(f"{what} not Ready after {timeout_s:.0f} s: {state.detail}")
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
        raise ReleaseFailed("rollback kept conflicting") from None
    generation = int(restored["metadata"].get("generation") or 1)
    wait_until_ready(isvcs, name, generation, timeout_s, failure_info(current))
    return f"rolled back to the previous spec (generation {generation}, Ready)"


def builder_kwargs(settings: ServingSettings, namespace: str) -> dict[str, Any]:
    """What `build_inference_service` takes from the serving settings (the one typed value, passed down)."""
    return {
        "namespace": namespace, "runtime": settings.runtime, "service_account": settings.service_account,
        "resources": Resources(settings.cpu_request, settings.cpu_limit, settings.memory_request,
                               settings.memory_limit),
        "min_replicas": settings.min_replicas, "max_replicas": settings.max_replicas,
        "canary_traffic_percent": settings.canary_traffic_percent, "istio_sidecar": settings.istio_sidecar,
        "runtime_version": settings.runtime_version, "predictor_image": settings.predictor_image,
        "grpc": settings.grpc,
    }


class KServeTarget:
    """Serves versions as one InferenceService: a rollout is the switch, and KServe moves traffic once Ready.

    ``start`` applies the spec for the version, waits until the controller reports *that* generation Ready (the
    new revision takes traffic only then; see docs/kubeflow.md for why there is no gap) and hands the smoke test the
    URL that reaches the new revision. Undoing puts the previous spec back (or deletes a first deployment).

    Args:
        isvcs: The InferenceServices API of the namespace.
        model_name: InferenceService name and served model name.
        settings: The serving settings (namespace, runtime, resources, replicas …).
        spec_path: Where to write the applied InferenceService as YAML (the deploy step's artifact).
    """

    name = "kserve"

    def __init__(self, isvcs: InferenceServices, model_name: str, settings: ServingSettings,
                 spec_path: Path | None = None, log: Callable[[str], None] = print) -> None:
        self.isvcs, self.model_name, self.settings = isvcs, model_name, settings
        self.spec_path, self.log = spec_path, log
        self.endpoint = ""
        self.generation = 0

    def manifest(self, storage_uri: str, card: Mapping[str, Any]) -> dict[str, Any]:
        """The InferenceService for a version (pure); a bad setting fails here, before anything is applied."""
        return to_manifest(build_inference_service(
            self.model_name, storage_uri=storage_uri, trained_tf_version=card.get("tensorflow_version"),
            **builder_kwargs(self.settings, self.isvcs.namespace),
        ))

    def check(self, card: Mapping[str, Any]) -> None:
        """Fails before an upload: a setting the builder refuses, an unreachable API, a missing permission."""
        self.manifest(f"s3://dry-run/{self.model_name}/0/", card)
        self.isvcs.get(self.model_name)

    def start(self, stored: StoredVersion) -> Candidate:
        manifest = self.manifest(stored.location.uri, stored.card)
        if self.spec_path is not None:
            Path(self.spec_path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.spec_path).write_text(manifest_yaml(manifest))
        before, after = apply_inference_service(self.isvcs, manifest)
        generation = int(after["metadata"].get("generation") or 1)
        timeout = float(self.settings.ready_timeout_s)
        self.log(f"{'replaced' if before else 'created'} {self.isvcs.describe(self.model_name)} (generation "
                 f"{generation}); waiting up to {timeout:.0f} s for it to be Ready")
        candidate = Candidate("", (before, generation))
        try:
            ready = wait_until_ready(self.isvcs, self.model_name, generation, timeout, failure_info(before))
        except OneLineError as exc:
            try:
                done = self.stop(candidate)
            except ReleaseFailed as again:
                done = str(again)
            raise ReleaseFailed(f"{exc}; {done}; the champion is unchanged") from None
        url = smoke_url_of(ready, self.settings.canary_traffic_percent)
        self.endpoint = str((ready.get("status") or {}).get("url") or url)
        self.generation = generation
        return Candidate(url, (before, generation))

    def switch(self, candidate: Candidate) -> Any:
        return candidate.handle[0]  # Ready means KServe already routes to the new revision

    def switch_back(self, previous: Any, candidate: Candidate) -> str:
        return self.stop(candidate)

    def stop(self, candidate: Candidate) -> str:
        before = candidate.handle[0]
        try:
            done = roll_back(self.isvcs, self.model_name, before, float(self.settings.ready_timeout_s))
        except OneLineError as exc:
            raise ReleaseFailed(f"rollback failed too: {exc}") from None
        self.log(done)
        return done

    def retire(self, previous: Any) -> None:
        """Nothing to do: KServe retires the previous revision itself."""

    def record(self) -> dict[str, Any]:
        return {"inference_service": f"{self.isvcs.namespace}/{self.model_name}", "generation": self.generation,
                "runtime": self.settings.runtime}
