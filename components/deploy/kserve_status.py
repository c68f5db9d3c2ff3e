"""Reading an InferenceService's status (pure): is this generation Ready, failed, or still rolling out, and where.

Only what the controller reports about the generation that was applied counts: right after a replace the status
still describes the previous revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boston_model.errors import ReleaseFailed
from components.deploy.kserve_spec import ANNOTATION_TAG_ROUTING

FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})
# Condition reasons that do not heal by waiting (Knative revisions, Deployments, pods). A rollout in progress is
# Unknown, or False without a reason (raw deployments), so neither is mistaken for a failure.
TERMINAL_REASONS = frozenset({
    "ProgressDeadlineExceeded", "ContainerMissing", "ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff",
    "ExitCode", "InvalidSpec", "Unschedulable",
})


@dataclass(frozen=True)
class Rollout:
    """Where a rollout stands: ``phase`` is "ready", "failed" or "pending"; ``detail`` says why, in one line."""

    phase: str
    detail: str


def _condition_text(condition: Mapping[str, Any]) -> str:
    parts = [str(condition.get(k)) for k in ("reason", "message") if condition.get(k)]
    return ": ".join(parts) or "no reason given"


def rollout_state(obj: Mapping[str, Any], generation: int, baseline_failure: Any = None) -> Rollout:
    """Judges whether generation ``generation`` of an InferenceService is Ready, failed, or still rolling out.

    A status about an older generation is never taken as ready nor failed: right after a replace it still
    describes the previous revision. ``baseline_failure`` is the ``lastFailureInfo`` seen before the apply; KServe
    keeps the last one around, so only a different one counts.
    """
    status = obj.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return Rollout("pending", f"the controller has observed generation {observed} of {generation}")
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    ready = conditions.get("Ready") or {}
    if ready.get("status") == "True":
        return Rollout("ready", "Ready")
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo")
    target_state = (model.get("states") or {}).get("targetModelState")
    if model.get("transitionStatus") in FAILED_TRANSITIONS or target_state == "FailedToLoad" or (
        failure and failure != baseline_failure
    ):
        text = _condition_text(failure) if failure else f"model {target_state or model.get('transitionStatus')}"
        return Rollout("failed", f"the model failed to load: {text}")
    for kind in ("Ready", "PredictorReady"):
        condition = conditions.get(kind) or {}
        reason = str(condition.get("reason") or "")
        if condition.get("status") == "False" and (reason in TERMINAL_REASONS or "fail" in reason.lower()):
            return Rollout("failed", f"{kind} is False: {_condition_text(condition)}")
    if ready:
        return Rollout("pending", f"Ready is {ready.get('status', 'Unknown')}: {_condition_text(ready)}")
    return Rollout("pending", "no Ready condition yet")


def smoke_url_of(obj: Mapping[str, Any], canary_traffic_percent: int = 100) -> str:
    """The URL to smoke-test: the latest revision's tagged URL during a canary, else the in-cluster address."""
    status = obj.get("status") or {}
    if canary_traffic_percent < 100:
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        tagged = [t.get("url") for t in traffic if t.get("latestRevision") and t.get("url")]
        if not tagged:
            raise ReleaseFailed(f"canary rollout: no URL for the latest revision in the status (is the "
                                    f"{ANNOTATION_TAG_ROUTING} annotation honoured?)")
        return str(tagged[0])
    # The cluster-local address first: the deploy step runs in the cluster, and the external URL usually needs
    # the ingress gateway, DNS and a token.
    url = (status.get("address") or {}).get("url") or status.get("url")
    if not url:
        raise ReleaseFailed("the InferenceService is Ready but its status has no URL")
    return str(url)


def failure_info(obj: Mapping[str, Any] | None) -> Any:
    """The model's ``lastFailureInfo`` (KServe keeps the last one, so a rollout compares against it)."""
    return (((obj or {}).get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo")
