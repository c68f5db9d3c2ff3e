"""The KServe deploy end to end against the Kubernetes API test double (tests/doubles/k8s_api.py).

The real `kubernetes` client talks HTTP to the double; models go to the real embedded S3 store; the smoke test
calls a V1 endpoint that answers with whichever revision the double currently serves, so a wrong wait or a
missing rollback shows up as wrong predictions, not as a mocked call.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kubernetes import client

from boston_model import card as model_format
from boston_model import errors
from boston_model.store import ObjectStore, S3Settings, parse_s3_uri
from boston_model.versions import read_champion
from components.deploy import kserve_api, kserve_target, release
from components.deploy.release import predict_v1
from components.deploy.serving import ServingSettings
from pipeline import config
from tests.doubles.k8s_api import FakeKubeApi, ModelEndpoint, running

NS = "ml-team"
MODEL = config.MODEL_NAME
FEATURES = list(config.FEATURES)
TIMEOUT_S = 15.0  # generous for a shared machine; the double reconciles in 0.3 s
OPTIONS = ServingSettings(
    target="kserve", namespace=NS, runtime="tensorflow", service_account="boston-housing-kserve",
    cpu_request="100m", cpu_limit="1", memory_request="256Mi", memory_limit="1Gi", min_replicas=1, max_replicas=2,
    runtime_version="2.21.0", predictor_image="registry.local/boston-predictor:test",
)


@dataclass
class Cluster:
    api: FakeKubeApi
    endpoint: ModelEndpoint
    store: ObjectStore
    bucket: str
    tmp: Path
    logs: list[str] = field(default_factory=list)

    def isvcs(self, host: str | None = None, attempts: int = 5) -> kserve_api.InferenceServices:
        api_client = client.ApiClient(client.Configuration(host=host or self.api.url))
        return kserve_api.InferenceServices(api_client, NS, attempts=attempts, sleep=lambda _: None,
                                            log=self.logs.append)

    def deploy(self, model: Model, predictions: pd.DataFrame | None = None, timeout: float = TIMEOUT_S,
               options: ServingSettings = OPTIONS, isvcs: kserve_api.InferenceServices | None = None):
        options = dataclasses.replace(options, ready_timeout_s=int(timeout))
        target = kserve_target.KServeTarget(isvcs or self.isvcs(), MODEL, options, self.tmp / "applied.yaml",
                                            log=self.logs.append)
        smoke = release.Smoke.from_predictions(model.predictions if predictions is None else predictions, FEATURES)
        return release.deploy(self.store, self.bucket, MODEL, model.path, {"rmse": 4.9}, target, options, smoke,
                              log=self.logs.append)

    def spec_uri(self) -> str:
        obj = self.api.get_object(NS, MODEL)
        assert obj is not None
        model = obj["spec"]["predictor"].get("model")
        return model["storageUri"] if model else obj["spec"]["predictor"]["containers"][0]["env"][0]["value"]

    def champion(self) -> dict | None:
        return read_champion(self.store, self.bucket, MODEL)


@dataclass
class Model:
    path: Path
    weights: np.ndarray
    bias: float
    predictions: pd.DataFrame  # what evaluate would have written: features + prediction


def make_model(folder: Path, bias: float) -> Model:
    """A model folder in the training format without TensorFlow (placeholder SavedModel, exact folded map)."""
    rng = np.random.default_rng(3)
    weights = rng.normal(0.0, 1.0, len(FEATURES)) / 2
    probe = np.abs(rng.normal(5.0, 3.0, (8, len(FEATURES))))
    saved = folder / model_format.SAVEDMODEL_DIR
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"placeholder")
    (saved / "variables" / "variables.index").write_bytes(b"placeholder")
    model_format.write_card(folder, {
        "format_version": model_format.FORMAT_VERSION, "feature_names": FEATURES, "target": config.TARGET,
        "weights": weights.tolist(), "bias": bias, "tensorflow_version": "2.21.0",
        "probe": {"inputs": probe.tolist(), "savedmodel_outputs": (probe @ weights + bias).tolist()},
    })
    rows = np.abs(rng.normal(5.0, 3.0, (6, len(FEATURES))))
    frame = pd.DataFrame(rows, columns=FEATURES)
    frame["prediction"] = rows @ weights + bias
    return Model(folder, weights, bias, frame)


@pytest.fixture
def cluster(s3_server: S3Settings, tmp_path: Path) -> Iterator[Cluster]:
    store = ObjectStore(s3_server)

    def load_model(uri: str):
        bucket, key = parse_s3_uri(uri)
        return model_format.linear_model_from_card(store.get_json(bucket, key + model_format.CARD_FILE)).predict

    with running(reconcile_after=0.3, load_model=load_model) as (api, endpoint):
        yield Cluster(api, endpoint, store, f"kserve-{uuid.uuid4().hex[:10]}", tmp_path)


@pytest.fixture
def models(tmp_path: Path) -> tuple[Model, Model]:
    return make_model(tmp_path / "a", bias=22.5), make_model(tmp_path / "b", bias=30.0)


def test_first_deploy_creates_the_service_smoke_tests_it_and_promotes_it(cluster, models):
    a, _ = models
    result = cluster.deploy(a)
    assert result.endpoint == f"http://{MODEL}.{NS}.example.com"  # the external URL people call
    assert result.model_uri == cluster.spec_uri() == f"s3://{cluster.bucket}/{MODEL}/{result.version}/"
    assert cluster.api.count("POST") == 1 and cluster.api.count("PUT") == 0
    # The smoke test reached the in-cluster address and was answered by the new model.
    assert cluster.endpoint.calls and {uri for _, uri in cluster.endpoint.calls} == {result.model_uri}
    champion = cluster.champion()
    assert champion["version"] == result.version and champion["previous"] is None
    assert champion["target"] == "kserve" and champion["inference_service"] == f"{NS}/{MODEL}"
    assert champion["generation"] == 1
    applied = yaml.safe_load((cluster.tmp / "applied.yaml").read_text())
    assert applied["spec"]["predictor"]["model"]["storageUri"] == result.model_uri
    assert applied["metadata"] == {k: v for k, v in cluster.api.get_object(NS, MODEL)["metadata"].items()
                                   if k in ("name", "namespace", "labels", "annotations")}


def test_redeploy_replaces_and_waits_for_the_new_generation(cluster, models):
    a, b = models
    first = cluster.deploy(a)
    calls_before = len(cluster.endpoint.calls)
    second = cluster.deploy(b)
    obj = cluster.api.get_object(NS, MODEL)
    assert obj["metadata"]["generation"] == 2 and obj["status"]["observedGeneration"] == 2
    assert cluster.api.count("PUT") == 1
    # Right after the replace the status still says Ready for generation 1: had the wait believed it, the smoke
    # test would have been answered by model A (and failed). Every call after the replace was answered by B.
    assert {uri for _, uri in cluster.endpoint.calls[calls_before:]} == {second.model_uri}
    assert cluster.spec_uri() == second.model_uri
    champion = cluster.champion()
    assert champion["version"] == second.version and champion["previous"] == first.version
    assert champion["generation"] == 2


def test_redeploy_keeps_the_live_objects_identity(cluster, models):
    a, b = models
    cluster.deploy(a)
    uid = cluster.api.get_object(NS, MODEL)["metadata"]["uid"]
    cluster.deploy(b, options=dataclasses.replace(OPTIONS, runtime="custom"))
    obj = cluster.api.get_object(NS, MODEL)
    assert obj["metadata"]["uid"] == uid
    assert "model" not in obj["spec"]["predictor"]  # the new spec replaced the old one, not merged into it
    assert obj["spec"]["predictor"]["containers"][0]["image"] == OPTIONS.predictor_image


def test_failed_condition_fails_fast_with_its_message_and_rolls_back(cluster, models):
    a, b = models
    first = cluster.deploy(a)
    cluster.api.plan("fail-condition", 'Revision "boston-housing-predictor-00002" failed: image pull back-off')
    with pytest.raises(errors.ReleaseFailed) as info:
        cluster.deploy(b, timeout=60)
    message = str(info.value)  # "failed: ..." and not "not Ready after 60 s": it failed on the condition, at once
    assert "generation 2 failed: Ready is False: RevisionFailed: Revision" in message
    assert "image pull back-off" in message and "rolled back to the previous spec" in message
    assert "the champion is unchanged" in message and "\n" not in message
    assert cluster.spec_uri() == first.model_uri
    assert cluster.api.served_storage_uri(MODEL) == first.model_uri
    assert cluster.champion()["version"] == first.version


def test_model_load_failure_on_a_first_deploy_reports_last_failure_info_and_deletes_it(cluster, models):
    a, _ = models
    cluster.api.plan("fail-model", "failed to download s3://models/boston-housing/x/: access denied")
    with pytest.raises(errors.ReleaseFailed) as info:
        cluster.deploy(a)
    message = str(info.value)
    assert "the model failed to load: ModelLoadFailed: failed to download" in message
    assert "deleted the new InferenceService (nothing was served before)" in message
    assert cluster.api.get_object(NS, MODEL) is None
    assert cluster.champion() is None


def test_timeout_names_the_generation_and_the_last_state_then_rolls_back(cluster, models):
    a, b = models
    first = cluster.deploy(a)
    cluster.api.plan("hang")
    with pytest.raises(errors.ReleaseFailed) as info:
        cluster.deploy(b, timeout=1.0)
    message = str(info.value)
    assert "generation 2 not Ready after 1 s: the controller has observed generation 1 of 2" in message
    assert "rolled back to the previous spec (generation 3, Ready)" in message
    assert cluster.spec_uri() == first.model_uri and cluster.champion()["version"] == first.version


def test_forbidden_fails_at_once_with_what_to_grant_and_uploads_nothing(cluster, models):
    a, _ = models
    cluster.api.fail_next("GET", 403)
    with pytest.raises(errors.ClusterRefused) as info:
        cluster.deploy(a)
    message = str(info.value)
    assert message.startswith(f"get InferenceService {NS}/{MODEL}: forbidden (403 ")
    assert 'cannot get resource "inferenceservices"' in message and "kserve/rbac.yaml" in message
    assert cluster.api.count("GET") == 1  # never retried
    assert not cluster.store.bucket_exists(cluster.bucket) or not cluster.store.list_keys(cluster.bucket)


def test_conflict_then_success(cluster, models):
    a, b = models
    cluster.deploy(a)
    cluster.api.fail_next("PUT", 409)
    second = cluster.deploy(b)
    assert cluster.api.count("PUT") == 2
    assert any("409" in line and "re-reading" in line for line in cluster.logs)
    assert cluster.champion()["version"] == second.version


def test_server_errors_are_retried_and_validation_errors_are_not(cluster, models):
    a, b = models
    cluster.api.fail_next("POST", 503, times=2)
    cluster.deploy(a)
    assert cluster.api.count("POST") == 3
    cluster.api.fail_next("PUT", 422, message='InferenceService "boston-housing" is invalid: spec.predictor: bad')
    with pytest.raises(errors.ClusterRefused, match=r"rejected the spec \(422 .*spec.predictor: bad\)"):
        cluster.deploy(b)
    assert cluster.api.count("PUT") == 1


def test_unreachable_api_fails_in_one_line(cluster, models):
    a, _ = models
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(errors.ClusterRefused, match=r"failed 2 times, last with cannot reach the Kubernetes API"):
        cluster.deploy(a, isvcs=cluster.isvcs(host=closed, attempts=2))


def test_smoke_mismatch_rolls_back_to_the_previous_spec(cluster, models):
    a, b = models
    first = cluster.deploy(a)
    wrong = b.predictions.assign(prediction=b.predictions["prediction"] + 0.5)  # evaluate saw other numbers
    with pytest.raises(errors.ReleaseFailed) as info:
        cluster.deploy(b, predictions=wrong)
    message = str(info.value)
    assert "smoke test: live predictions differ from evaluate's by 0.5" in message
    assert "rolled back to the previous spec (generation 3, Ready)" in message
    # The rollback is real: the service serves model A again, and answers what A predicts.
    assert cluster.spec_uri() == first.model_uri
    rows = a.predictions[FEATURES].to_numpy()
    live = predict_v1(cluster.endpoint.url, MODEL, rows)
    np.testing.assert_allclose(live, a.predictions["prediction"].to_numpy())
    assert cluster.champion()["version"] == first.version


def test_smoke_mismatch_on_a_first_deploy_leaves_nothing_serving(cluster, models):
    a, _ = models
    with pytest.raises(errors.ReleaseFailed, match="deleted the new InferenceService"):
        cluster.deploy(a, predictions=a.predictions.assign(prediction=0.0))
    assert cluster.api.get_object(NS, MODEL) is None and cluster.champion() is None


def test_bad_options_fail_before_anything_is_uploaded_or_applied(cluster, models):
    a, _ = models
    bad = dataclasses.replace(OPTIONS, runtime_version="2.15.0")
    with pytest.raises(errors.BadInput, match="older than TensorFlow 2.21.0"):
        cluster.deploy(a, options=bad)
    assert cluster.api.requests == []
    assert not cluster.store.bucket_exists(cluster.bucket)


# --- the KFP component's kserve branch, called as the step calls it -------------------------------------------


@pytest.fixture
def component_env(cluster: Cluster, s3_server: S3Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kubeconfig pointing at the double and the store's keys in the environment, as a pod would have them."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "double",
        "clusters": [{"name": "double", "cluster": {"server": cluster.api.url}}],
        "users": [{"name": "step", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "step", "namespace": NS}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for key, value in s3_server.to_env().items():
        monkeypatch.setenv(key, value)


def _call_component(cluster: Cluster, model: Model, tmp_path: Path, **overrides):
    from kfp.dsl import Artifact, Dataset, Metrics
    from kfp.dsl import Model as ModelArtifact

    from components.deploy.component import deploy_model

    predictions = tmp_path / "predictions.csv"
    model.predictions.to_csv(predictions, index=False)
    spec = Artifact(name="applied_spec", uri=str(tmp_path / "applied_spec"))
    args = dict(
        model=ModelArtifact(name="model", uri=str(model.path), metadata={"feature_names": FEATURES}),
        predictions=Dataset(name="predictions", uri=str(predictions)),
        metrics=Metrics(name="metrics", uri=str(tmp_path / "metrics"), metadata={"rmse": 4.9}),
        applied_spec=spec, model_name=MODEL, bucket=cluster.bucket, s3_endpoint="",
        serving=dict(target="kserve", local_port=0, namespace=NS, runtime="tensorflow", runtime_version="2.21.0",
                     predictor_image="", service_account="sa", cpu_request="100m", cpu_limit="1",
                     memory_request="256Mi", memory_limit="1Gi", min_replicas=1, max_replicas=1,
                     canary_traffic_percent=100, istio_sidecar=False, ready_timeout_s=int(TIMEOUT_S)),
    )
    args.update(overrides)
    return deploy_model.python_func(**args), spec


def test_component_kserve_branch_deploys_and_writes_the_applied_spec(cluster, models, tmp_path, component_env):
    a, _ = models
    outputs, spec = _call_component(cluster, a, tmp_path)
    assert outputs.endpoint == f"http://{MODEL}.{NS}.example.com"
    assert outputs.model_uri == cluster.spec_uri() and outputs.version in outputs.model_uri
    applied = yaml.safe_load(Path(spec.path).read_text())
    assert applied["kind"] == "InferenceService" and applied["metadata"]["namespace"] == NS
    assert spec.metadata == {"namespace": NS, "runtime": "tensorflow", "storage_uri": outputs.model_uri}


def test_component_failure_is_one_line_on_stderr(cluster, models, tmp_path, component_env, capsys):
    a, _ = models
    cluster.api.fail_next("GET", 403)
    with pytest.raises(SystemExit) as info:
        _call_component(cluster, a, tmp_path)
    assert info.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"ERROR deploy: get InferenceService {NS}/{MODEL}: forbidden (403 ")
