"""Operate the stored models from Python (the notebook) and from ``boston-pipeline models`` (the CLI formats these).

Every function finds the store the way ``boston-pipeline run`` does: ``MINIO_*`` variables if set, else the embedded
SeaweedFS in the state folder (started if needed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from boston_model.drift import MIN_ROWS, DriftReport, card_bins, drift_report
from boston_model.errors import BadInput
from boston_model.store import ObjectStore
from boston_model.versions import ModelLocation, read_champion
from components.common.registry import (
    ManifestCheck,
    StoredVersion,
    check_manifest,
    read_version,
    resolve_version,
    version_ids,
)
from components.deploy.release import Released, Target, release, rollback_version, settings_for
from components.deploy.serving import ServingSettings, parse_serving
from pipeline import config

CARD_SUMMARY_KEYS = ("tensorflow_version", "keras_version", "train_rows", "epochs_run", "best_epoch", "data_sha256")


def open_store() -> ObjectStore:
    """The store ``boston-pipeline run`` uses, checked (one-line StoreError when unreachable)."""
    from pipeline import embedded_s3

    settings, _ = embedded_s3.settings_for_run()
    store = ObjectStore(settings)
    store.check()
    return store


def _state() -> Path:
    from pipeline.state import state_dir

    return state_dir()


def default_params() -> dict[str, Any]:
    from components.train.core import TrainParams

    return asdict(TrainParams())


def changed_params(card: dict[str, Any]) -> dict[str, Any]:
    """The training parameters of a card that differ from today's defaults."""
    training = card.get("training") or {}
    defaults = default_params()
    return {k: v for k, v in sorted(training.items()) if defaults.get(k) != v}


def serving_now(state: Path | None = None) -> dict[str, str]:
    """``{storage URI: where}`` for every live local predictor recorded in the state folder."""
    import psutil

    from components.deploy.process import read_served

    state = state or _state()
    found = {}
    for record in sorted((state / "serving").glob("*.json")):
        if not record.stem.isdigit():
            continue
        served = read_served(state, int(record.stem))
        if served and psutil.pid_exists(served.pid):
            found[served.uri] = served.url
    return found


@dataclass(frozen=True)
class VersionRow:
    """One line of ``models list``."""

    version: str
    created: str
    rmse: float | None
    r2: float | None
    data_sha256: str | None
    changed_params: dict[str, Any]
    champion: bool
    serving: str | None
    uri: str


def list_models(model_name: str = config.MODEL_NAME, bucket: str = config.BUCKET,
                store: ObjectStore | None = None) -> list[VersionRow]:
    """Every stored version, newest first, with its metrics, data set, changed parameters and markers."""
    store = store or open_store()
    champion = read_champion(store, bucket, model_name)
    serving = serving_now()
    if champion and champion.get("target") == "kserve":
        serving.setdefault(str(champion["uri"]), f"kserve {champion.get('inference_service', '')}".strip())
    rows = []
    for version in version_ids(store, bucket, model_name):
        stored = read_version(store, bucket, model_name, version)
        metrics = stored.metrics
        rows.append(VersionRow(
            version=version, created=stored.created,
            rmse=_number(metrics.get("rmse")), r2=_number(metrics.get("r2")),
            data_sha256=stored.card.get("data_sha256"), changed_params=changed_params(stored.card),
            champion=bool(champion and champion.get("version") == version),
            serving=serving.get(stored.location.uri), uri=stored.location.uri,
        ))
    return rows


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _resolve(store: ObjectStore, bucket: str, model_name: str, version: str) -> str:
    return resolve_version(version_ids(store, bucket, model_name), version, read_champion(store, bucket, model_name))


@dataclass(frozen=True)
class ModelDetails:
    """What ``models show`` prints: the stored version and the check of every file against its manifest."""

    stored: StoredVersion
    check: ManifestCheck
    champion: bool


def show_model(version: str, model_name: str = config.MODEL_NAME, bucket: str = config.BUCKET,
               store: ObjectStore | None = None) -> ModelDetails:
    """The model card, metrics and a manifest check of every stored file of ``version`` (prefix or ``champion``)."""
    store = store or open_store()
    resolved = _resolve(store, bucket, model_name, version)
    champion = read_champion(store, bucket, model_name)
    return ModelDetails(read_version(store, bucket, model_name, resolved),
                        check_manifest(store, ModelLocation(bucket, model_name, resolved)),
                        bool(champion and champion.get("version") == resolved))


@dataclass(frozen=True)
class DiffRow:
    """One compared quantity; ``differs`` marks it."""

    section: str
    name: str
    a: Any
    b: Any

    @property
    def differs(self) -> bool:
        if isinstance(self.a, float) and isinstance(self.b, float):
            return abs(self.a - self.b) > 1e-12 * max(1.0, abs(self.a), abs(self.b))
        return self.a != self.b


@dataclass(frozen=True)
class ModelDiff:
    a: str
    b: str
    rows: list[DiffRow] = field(default_factory=list)


def diff_models(a: str, b: str, model_name: str = config.MODEL_NAME, bucket: str = config.BUCKET,
                store: ObjectStore | None = None) -> ModelDiff:
    """Metrics, training parameters and per-feature weights of two versions side by side."""
    store = store or open_store()
    left = read_version(store, bucket, model_name, _resolve(store, bucket, model_name, a))
    right = read_version(store, bucket, model_name, _resolve(store, bucket, model_name, b))
    rows = []
    for key in ("rmse", "r2", "mae", "mse"):
        if key in left.metrics or key in right.metrics:
            rows.append(DiffRow("metrics", key, _number(left.metrics.get(key)), _number(right.metrics.get(key))))
    counts = [int(m["test_rows"]) if isinstance(m.get("test_rows"), int | float) else None
              for m in (left.metrics, right.metrics)]
    rows.append(DiffRow("metrics", "test_rows", *counts))
    lt, rt = left.card.get("training") or {}, right.card.get("training") or {}
    rows += [DiffRow("parameters", k, lt.get(k), rt.get(k)) for k in sorted(set(lt) | set(rt))]
    rows.append(DiffRow("data", "data_sha256", left.card.get("data_sha256"), right.card.get("data_sha256")))
    rows.append(DiffRow("data", "train_rows", left.card.get("train_rows"), right.card.get("train_rows")))
    lw = dict(zip(left.card["feature_names"], map(float, left.card["weights"]), strict=True))
    rw = dict(zip(right.card["feature_names"], map(float, right.card["weights"]), strict=True))
    names = list(lw) + [n for n in rw if n not in lw]
    rows += [DiffRow("weights", n, lw.get(n), rw.get(n)) for n in names]
    rows.append(DiffRow("weights", "bias", float(left.card["bias"]), float(right.card["bias"])))
    return ModelDiff(left.version, right.version, rows)


@dataclass(frozen=True)
class Cluster:
    """How ``--target kserve`` reaches the cluster (the serving settings say the rest)."""

    kubeconfig: str | None = None
    context: str | None = None
    api_client: Any = None  # a kubernetes.client.ApiClient (tests point it at the API double)


def serving_target(settings: ServingSettings, store: ObjectStore, model_name: str, cluster: Cluster | None = None,
                   log: Callable[[str], None] = print, champion: Mapping[str, Any] | None = None) -> Target:
    """The release target the settings name, for a promote from this machine (``champion``: the record, whose
    storage-initializer image a container promote reuses)."""
    if settings.target == "process":
        from components.deploy.process import ProcessTarget

        return ProcessTarget(_state(), store, model_name, config.LOCAL_HOST, settings.local_port, log)
    if settings.target == "container":
        from components.deploy.container import ContainerTarget

        initializer = str((champion or {}).get("initializer_image") or config.IMAGE)
        return ContainerTarget(store, model_name, settings.local_port, settings.predictor_image, initializer,
                               str(_state()), log=log)
    from components.deploy.kserve_api import InferenceServices, current_namespace, kube_api_client
    from components.deploy.kserve_target import KServeTarget

    cluster = cluster or Cluster()
    api = cluster.api_client or kube_api_client(cluster.kubeconfig, cluster.context)
    namespace = settings.namespace or current_namespace()
    return KServeTarget(InferenceServices(api, namespace, log=log), model_name, settings, log=log)


def promote_model(version: str, serving: Mapping[str, Any] | None = None, model_name: str = config.MODEL_NAME,
                  bucket: str = config.BUCKET, cluster: Cluster | None = None, store: ObjectStore | None = None,
                  log: Callable[[str], None] = print, _history: list[str] | None = None) -> Released:
    """Verifies ``version``, serves it beside the champion, smoke-tests it, switches to it and makes it champion.

    Args:
        version: Full id, unique prefix, its 8-character hash or ``champion``.
        serving: Serving settings that override what the version was served with (e.g. ``{"target": "kserve",
            "min_replicas": 3}``); unset keys keep what was recorded for that version, else what serves now.
        model_name: The model.
        bucket: The store's bucket.
        cluster: How to reach the cluster (target ``kserve``).
        store: An open store (default: `open_store`).
        log: Progress lines.
    """
    store = store or open_store()
    resolved = _resolve(store, bucket, model_name, version)
    champion = read_champion(store, bucket, model_name)
    values = settings_for(champion, resolved, dict(serving or {}))
    values.setdefault("target", "process")
    settings = parse_serving(values)
    target = serving_target(settings, store, model_name, cluster, log, champion)
    return release(store, ModelLocation(bucket, model_name, resolved), target, settings, lock_dir=_state(),
                   history=_history, log=log)


def rollback_model(serving: Mapping[str, Any] | None = None, model_name: str = config.MODEL_NAME,
                   bucket: str = config.BUCKET, cluster: Cluster | None = None, store: ObjectStore | None = None,
                   log: Callable[[str], None] = print) -> Released:
    """Promotes the previous champion (the newest entry of the champion history), with the same guarantees."""
    store = store or open_store()
    version, history = rollback_version(read_champion(store, bucket, model_name))
    return promote_model(version, serving, model_name, bucket, cluster, store, log, _history=history)


def live_counts(url: str, model_name: str, timeout: float = 10.0) -> dict[str, list[float]]:
    """The predictor's counts of rows per feature and bin, read from its ``/metrics`` (Prometheus text format).

    Raises:
        BadInput: the endpoint does not answer, or exposes no counts for ``model_name``.
    """
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    from boston_model.drift import METRIC

    try:
        response = requests.get(f"{url.rstrip('/')}/metrics", timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise BadInput(f"cannot read {url}/metrics: {type(exc).__name__}") from None
    found: dict[str, dict[int, float]] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{METRIC}_total" and labels.get("model_name") == model_name:
                found.setdefault(labels["feature"], {})[int(labels["bin"])] = sample.value
    if not found:
        raise BadInput(f"{url}/metrics has no {METRIC} counts for model {model_name!r}: is it this project's "
                       "predictor, serving that model name?")
    return {name: [bins.get(i, 0.0) for i in range(max(bins) + 1)] for name, bins in found.items()}


def served_version(url: str, model_name: str, timeout: float = 10.0) -> str | None:
    """The version the predictor at ``url`` serves, from its V2 model metadata (None when it does not say)."""
    import requests

    try:
        versions = requests.get(f"{url.rstrip('/')}/v2/models/{model_name}", timeout=timeout).json().get("versions")
    except (requests.RequestException, ValueError, AttributeError):
        return None
    return str(versions[0]) if isinstance(versions, list) and versions else None


@dataclass(frozen=True)
class Drift:
    """What ``models drift`` prints: the served version and its live inputs against its training distribution."""

    url: str
    version: str
    report: DriftReport
    labels: dict[str, list[str]]


def drift_of(url: str | None = None, model_name: str = config.MODEL_NAME, bucket: str = config.BUCKET,
             store: ObjectStore | None = None, min_rows: int = MIN_ROWS) -> Drift:
    """Population stability index per feature of what the endpoint was asked, against what the model learned.

    Args:
        url: The predictor (an InferenceService URL, or the local one by default).
        model_name: The served model name.
        bucket: The store's bucket.
        store: An open store (default: `open_store`).
        min_rows: Fewer rows than this read "too few rows".
    """
    from components.deploy.process import read_served

    if url is None:
        served = read_served(_state(), config.LOCAL_PORT)
        url = served.url if served else f"http://{config.LOCAL_HOST}:{config.LOCAL_PORT}"
    counts = live_counts(url, model_name)
    store = store or open_store()
    version = served_version(url, model_name) or (read_champion(store, bucket, model_name) or {}).get("version")
    if not version:
        raise BadInput(f"{url} does not say which version it serves and there is no champion to assume")
    card = read_version(store, bucket, model_name, str(version)).card
    bins = card_bins(card)
    return Drift(url, str(version), drift_report(counts, bins, min_rows),
                 {name: bins.labels(name) for name in bins.feature_names})
