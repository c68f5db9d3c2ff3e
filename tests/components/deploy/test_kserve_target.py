"""The KServe target's pure parts: storage URIs, the InferenceService builder, status reading, and kserve/ assets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kserve.models import V1beta1InferenceService, V1beta1ModelSpec

from boston_model import errors
from boston_model.errors import BadInput
from components.deploy import kserve_spec, kserve_status
from pipeline import config

REPO = Path(__file__).resolve().parents[3]
KSERVE_DIR = REPO / "kserve"
NS = "kubeflow-user-example-com"  # the namespace the reference manifests name
URI = "s3://models/boston-housing/20261125T101500Z-0123abcd/"  # the version the reference manifests name
RESOURCES = kserve_spec.Resources(config.CPU_REQUEST, config.CPU_LIMIT, config.MEMORY_REQUEST, config.MEMORY_LIMIT)


def _build(runtime: str = "tensorflow", **overrides) -> V1beta1InferenceService:
    """The builder with the pipeline's defaults, as the reference manifests were written."""
    kwargs = dict(
        service_account=config.SERVICE_ACCOUNT, resources=RESOURCES, min_replicas=config.MIN_REPLICAS,
        max_replicas=config.MAX_REPLICAS, canary_traffic_percent=config.CANARY_TRAFFIC_PERCENT,
        istio_sidecar=config.ISTIO_SIDECAR, runtime_version=config.TF_SERVING_VERSION,
        predictor_image=config.PREDICTOR_IMAGE, trained_tf_version="2.20.0",
    )
    kwargs.update(overrides)
    return kserve_spec.build_inference_service(config.MODEL_NAME, NS, URI, runtime, **kwargs)


# --- storage URI ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("minio://mlpipeline/v2/artifacts/boston-housing/run-1/train-model/42/model",
     "s3://mlpipeline/v2/artifacts/boston-housing/run-1/train-model/42/model/"),
    ("s3://models/boston-housing/20261125T101500Z-0123abcd/", "s3://models/boston-housing/20261125T101500Z-0123abcd/"),
    ("s3://models/boston-housing/v1", "s3://models/boston-housing/v1/"),
    ("s3://models/boston-housing/v1///", "s3://models/boston-housing/v1/"),
    ("  s3://models/boston ", "s3://models/boston/"),
])
def test_storage_uri_becomes_an_s3_folder_with_one_trailing_slash(given, expected):
    assert kserve_spec.storage_uri_for(given) == expected


@pytest.mark.parametrize("given", ["s3://models/boston", "s3://models/boston/", "minio://models/boston"])
def test_storage_uri_never_matches_a_neighbour_prefix(given):
    prefix = kserve_spec.storage_uri_for(given)
    assert "s3://models/boston/1/saved_model.pb".startswith(prefix)
    assert not "s3://models/boston-v2/1/saved_model.pb".startswith(prefix)
    assert not "s3://models/boston.old/1/saved_model.pb".startswith(prefix)


@pytest.mark.parametrize("given", [
    "gs://bucket/model", "https://example.com/model", "/local/model", "s3://bucket", "s3://bucket/",
    "s3://bucket/a//b", "s3://bucket/a/../b", "s3://bucket/./a", "",
])
def test_storage_uri_rejects_what_kserve_could_misread(given):
    with pytest.raises(BadInput, match="storage URI"):
        kserve_spec.storage_uri_for(given)


# --- the builder --------------------------------------------------------------------------------------------------


def test_tensorflow_runtime_field_by_field():
    isvc = _build("tensorflow")
    assert isinstance(isvc, V1beta1InferenceService)
    assert isinstance(isvc.spec.predictor.model, V1beta1ModelSpec)
    m = kserve_spec.to_manifest(isvc)
    assert m["apiVersion"] == "serving.kserve.io/v1beta1"
    assert m["kind"] == "InferenceService"
    assert m["metadata"] == {
        "name": "boston-housing", "namespace": NS,
        "labels": {"app.kubernetes.io/name": "boston-housing", "app.kubernetes.io/part-of": "boston-housing-kfp"},
        "annotations": {"sidecar.istio.io/inject": "false"},
    }
    predictor = m["spec"]["predictor"]
    assert set(predictor) == {"minReplicas", "maxReplicas", "serviceAccountName", "model"}
    assert predictor["minReplicas"] == config.MIN_REPLICAS
    assert predictor["maxReplicas"] == config.MAX_REPLICAS
    assert predictor["serviceAccountName"] == config.SERVICE_ACCOUNT
    assert predictor["model"] == {
        "modelFormat": {"name": "tensorflow", "version": "2"},
        "runtime": "kserve-tensorflow-serving",
        "runtimeVersion": config.TF_SERVING_VERSION,
        "protocolVersion": "v1",
        "storageUri": URI,
        "resources": {"requests": {"cpu": config.CPU_REQUEST, "memory": config.MEMORY_REQUEST},
                      "limits": {"cpu": config.CPU_LIMIT, "memory": config.MEMORY_LIMIT}},
    }
    assert set(m["spec"]) == {"predictor"}


def test_custom_runtime_field_by_field():
    m = kserve_spec.to_manifest(_build("custom"))
    predictor = m["spec"]["predictor"]
    assert "model" not in predictor
    assert set(predictor) == {"minReplicas", "maxReplicas", "serviceAccountName", "containers"}
    (container,) = predictor["containers"]
    assert container == {
        "name": "kserve-container",  # the name KServe injects the storage initializer for
        "image": config.PREDICTOR_IMAGE,
        "args": ["--model_name", "boston-housing", "--model_dir", "/mnt/models", "--http_port", "8080",
                 "--bind", "0.0.0.0", "--enable_grpc", "true", "--grpc_port", "8081"],
        "env": [{"name": "STORAGE_URI", "value": URI}],
        # V2 over gRPC beside REST: KServe gives a port named h2c (or *grpc*) appProtocol kubernetes.io/h2c.
        "ports": [{"containerPort": 8080, "protocol": "TCP"},
                  {"name": "h2c", "containerPort": 8081, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": config.CPU_REQUEST, "memory": config.MEMORY_REQUEST},
                      "limits": {"cpu": config.CPU_LIMIT, "memory": config.MEMORY_LIMIT}},
        # Ready once the model is loaded and self-checked, so a rollout moves traffic only to a pod that answers.
        "readinessProbe": {"httpGet": {"path": "/v2/models/boston-housing/ready", "port": 8080},
                           "periodSeconds": 2, "failureThreshold": 3},
    }
    # Prometheus scrapes /metrics on the REST port, the way KServe documents it (the drift counts are there).
    assert m["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false",
                                            "serving.kserve.io/enable-prometheus-scraping": "true",
                                            "prometheus.kserve.io/port": "8080",
                                            "prometheus.kserve.io/path": "/metrics"}


CONTAINERS_SCHEMA = Path(__file__).with_name("inferenceservice_v1beta1_predictor_containers.schema.json")


@pytest.mark.parametrize("grpc", [True, False], ids=["grpc", "rest-only"])
def test_custom_runtime_containers_pass_the_crd_schema(grpc):
    """The predictor's containers (ports included) against the InferenceService CRD's own schema for them."""
    import json

    import jsonschema

    schema = json.loads(CONTAINERS_SCHEMA.read_text())["containers"]
    containers = kserve_spec.to_manifest(_build("custom", grpc=grpc))["spec"]["predictor"]["containers"]
    jsonschema.validate(containers, schema)
    # What the schema states as x-kubernetes-list-map-keys, and the API server's rules for port names.
    ports = containers[0]["ports"]
    assert len({(p["containerPort"], p.get("protocol", "TCP")) for p in ports}) == len(ports)
    names = [p["name"] for p in ports if "name" in p]
    assert len(set(names)) == len(names) and all(len(n) <= 15 and n.islower() for n in names)


def test_custom_runtime_without_grpc():
    (container,) = kserve_spec.to_manifest(_build("custom", grpc=False))["spec"]["predictor"]["containers"]
    assert container["args"][-2:] == ["--enable_grpc", "false"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]


def test_canary_istio_and_scale_to_zero_options():
    m = kserve_spec.to_manifest(
        _build(canary_traffic_percent=20, istio_sidecar=True, min_replicas=0, service_account=""))
    assert m["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert m["spec"]["predictor"]["minReplicas"] == 0
    assert "serviceAccountName" not in m["spec"]["predictor"]
    assert m["metadata"]["annotations"] == {"sidecar.istio.io/inject": "true",
                                            "serving.kserve.io/enable-tag-routing": "true"}


def test_the_storage_uri_is_normalised_by_the_builder():
    isvc = kserve_spec.build_inference_service(
        "boston-housing", NS, "minio://models/boston-housing/v7", "tensorflow", service_account="",
        resources=RESOURCES, min_replicas=1, max_replicas=1, runtime_version="2.21.0",
    )
    assert isvc.spec.predictor.model.storage_uri == "s3://models/boston-housing/v7/"


@pytest.mark.parametrize(("overrides", "runtime", "message"), [
    ({"runtime_version": "2.19.0"}, "tensorflow", "older than TensorFlow 2.20.0"),
    ({"runtime_version": ""}, "tensorflow", "needs a runtime version"),
    ({"predictor_image": ""}, "custom", "needs the predictor image"),
    ({}, "sklearn", "unknown runtime"),
    ({"min_replicas": 3, "max_replicas": 2}, "tensorflow", "replicas"),
    ({"min_replicas": 0, "max_replicas": 0}, "tensorflow", "replicas"),
    ({"canary_traffic_percent": 101}, "tensorflow", "canary"),
])
def test_builder_rejects_bad_options_in_one_line(overrides, runtime, message):
    with pytest.raises(BadInput, match=message) as info:
        _build(runtime, **overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["Boston", "1boston", "boston_housing", "boston-", "b" * 64, ""])
def test_builder_rejects_names_kubernetes_would_reject(name):
    with pytest.raises(BadInput, match="DNS label"):
        kserve_spec.build_inference_service(name, NS, URI, "tensorflow", service_account="", resources=RESOURCES,
                                   min_replicas=1, max_replicas=1, runtime_version="2.21.0")


def test_a_newer_tf_serving_serves_an_older_model_and_versions_compare_numerically():
    assert _build(runtime_version="2.22.0", trained_tf_version="2.21.0")
    assert _build(runtime_version="2.21.0", trained_tf_version="2.9.1")  # 21 > 9, not "2" < "9"
    assert kserve_spec.version_tuple("2.21.0-gpu") == (2, 21, 0)
    assert kserve_spec.version_tuple("2.21") == (2, 21, 0)


@pytest.mark.parametrize("runtime", ["tensorflow", "custom"])
def test_reference_manifests_in_kserve_equal_the_builder_output(runtime):
    reference = yaml.safe_load((KSERVE_DIR / f"inferenceservice-{runtime}.yaml").read_text())
    assert reference == kserve_spec.to_manifest(_build(runtime))


# --- reading the status ---------------------------------------------------------------------------------------


def _obj(observed: int, *conditions: dict, model_status: dict | None = None, **status) -> dict:
    body = {"observedGeneration": observed, "conditions": list(conditions), **status}
    if model_status is not None:
        body["modelStatus"] = model_status
    return {"metadata": {"name": "m", "generation": 2}, "status": body}


READY = {"type": "Ready", "status": "True"}


def test_an_old_generation_that_is_ready_is_not_the_new_one():
    assert kserve_status.rollout_state(_obj(1, READY), 2).phase == "pending"
    assert kserve_status.rollout_state({"metadata": {}}, 1).phase == "pending"
    assert kserve_status.rollout_state(_obj(2, READY), 2).phase == "ready"


def test_a_failed_condition_fails_with_its_message():
    failed = {"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": "Back-off pulling image x"}
    state = kserve_status.rollout_state(_obj(2, failed), 2)
    assert state == kserve_status.Rollout("failed", "Ready is False: RevisionFailed: Back-off pulling image x")


def test_last_failure_info_fails_with_its_message_unless_it_is_the_old_one():
    info = {"reason": "ModelLoadFailed", "message": "no saved_model.pb"}
    blocked = {"transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": info}
    assert kserve_status.rollout_state(_obj(2, model_status=blocked), 2) == kserve_status.Rollout(
        "failed", "the model failed to load: ModelLoadFailed: no saved_model.pb")
    # KServe keeps the last failure after it recovers: the same record seen before the apply is not news.
    in_progress = {"transitionStatus": "InProgress", "lastFailureInfo": info}
    assert kserve_status.rollout_state(_obj(2, model_status=in_progress), 2, baseline_failure=info).phase == "pending"
    assert kserve_status.rollout_state(_obj(2, model_status=in_progress), 2, baseline_failure=None).phase == "failed"


def test_a_rollout_in_progress_is_not_a_failure():
    raw_starting = {"type": "PredictorReady", "status": "False"}  # raw deployments say False, without a reason
    unknown = {"type": "Ready", "status": "Unknown", "reason": "RevisionMissing"}
    assert kserve_status.rollout_state(_obj(2, raw_starting, unknown), 2).phase == "pending"
    min_replicas = {"type": "Ready", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "…"}
    assert kserve_status.rollout_state(_obj(2, min_replicas), 2).phase == "pending"


def test_smoke_url_prefers_the_in_cluster_address_and_uses_the_tag_during_a_canary():
    obj = _obj(2, READY, url="http://m.ns.example.com", address={"url": "http://m-predictor.ns.svc.cluster.local"},
               components={"predictor": {"traffic": [
                   {"revisionName": "m-2", "percent": 10, "latestRevision": True, "url": "http://latest-m.ns"},
                   {"revisionName": "m-1", "percent": 90, "latestRevision": False}]}})
    assert kserve_status.smoke_url_of(obj) == "http://m-predictor.ns.svc.cluster.local"
    assert kserve_status.smoke_url_of(obj, canary_traffic_percent=10) == "http://latest-m.ns"
    assert kserve_status.smoke_url_of(_obj(2, READY, url="http://m.ns.example.com")) == "http://m.ns.example.com"
    with pytest.raises(errors.ReleaseFailed, match="no URL"):
        kserve_status.smoke_url_of(_obj(2, READY))
    with pytest.raises(errors.ReleaseFailed, match="canary"):
        kserve_status.smoke_url_of(_obj(2, READY, url="http://m"), canary_traffic_percent=10)


# --- kserve/ cluster assets -----------------------------------------------------------------------------------


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KSERVE_DIR / name).read_text()) if d]


def test_kustomization_lists_existing_files_and_nothing_cluster_wide():
    kustomization = _docs("kustomization.yaml")[0]
    kinds = []
    for resource in kustomization["resources"]:
        assert (KSERVE_DIR / resource).is_file(), resource
        kinds += [d["kind"] for d in _docs(resource)]
    assert sorted(kinds) == ["Role", "RoleBinding", "Secret", "ServiceAccount"]
    assert not any(k.startswith("Cluster") for k in kinds)


def test_secret_carries_kserve_annotations_placeholders_and_the_keys_the_steps_read():
    (secret,) = _docs("s3-secret.yaml")
    assert secret["metadata"]["name"] == config.S3_SECRET_NAME
    annotations = secret["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"] == config.CLUSTER_S3_ENDPOINT
    assert {"serving.kserve.io/s3-usehttps", "serving.kserve.io/s3-verifyssl",
            "serving.kserve.io/s3-region"} <= set(annotations)
    assert set(secret["stringData"]) == set(config.S3_SECRET_KEY_TO_ENV)
    assert all(value.startswith("REPLACE_WITH_") for value in secret["stringData"].values())


def test_service_account_carries_the_secret_and_rbac_allows_what_the_deploy_does():
    (account,) = _docs("service-account.yaml")
    assert account["metadata"]["name"] == config.SERVICE_ACCOUNT
    assert account["secrets"] == [{"name": config.S3_SECRET_NAME}]
    role, binding = _docs("rbac.yaml")
    (rule,) = role["rules"]
    assert rule["apiGroups"] == ["serving.kserve.io"] and rule["resources"] == ["inferenceservices"]
    assert {"get", "list", "watch", "create", "update", "delete"} <= set(rule["verbs"])
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"][0]["namespace"] == _docs("kustomization.yaml")[0]["namespace"]


def test_the_default_tf_serving_release_can_load_what_training_exports():
    """The rule in pipeline/config.py: TF Serving's tag is >= the training TensorFlow and in step with its minor."""
    from importlib.metadata import version

    trained = kserve_spec.version_tuple(version("tensorflow-cpu"))
    serving = kserve_spec.version_tuple(config.TF_SERVING_VERSION)
    assert serving >= trained and serving[:2] == trained[:2]
    assert _build()  # the builder accepts the defaults for a model trained by this environment
