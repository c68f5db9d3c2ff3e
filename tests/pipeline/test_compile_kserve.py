"""The compiled pipeline as a Kubeflow user uploads it: KServe by default, secrets wired by name, retries, no cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.runner import compile_pipeline

SECRET_SENTINELS = ("sentinel-access-key-4f1c", "sentinel-secret-key-9b2e")
S3_STEPS = ("exec-load-data", "exec-evaluate-model", "exec-deploy-model")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, dict]:
    """(YAML text, pipeline spec, Kubernetes platform spec), compiled with S3 keys present in the environment."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MINIO_ACCESS_KEY", SECRET_SENTINELS[0])
        env.setenv("MINIO_SECRET_KEY", SECRET_SENTINELS[1])
        path = compile_pipeline(tmp_path_factory.mktemp("kserve-yaml") / "pipeline.yaml")
    text = Path(path).read_text()
    spec, platform = yaml.safe_load_all(text)
    return text, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _root_params(spec: dict) -> dict:
    return spec["root"]["inputDefinitions"]["parameters"]


def test_the_uploaded_pipeline_deploys_to_kserve_from_kubeflows_object_store(compiled):
    _, spec, _ = compiled
    params = _root_params(spec)
    serving = params["serving"]
    assert serving["parameterType"] == "STRUCT"
    assert serving["defaultValue"]["target"] == "kserve"
    assert params["s3_endpoint"]["defaultValue"] == config.CLUSTER_S3_ENDPOINT
    expected = {
        "namespace": config.KSERVE_NAMESPACE, "runtime": config.SERVING_RUNTIME,
        "runtime_version": config.TF_SERVING_VERSION, "predictor_image": config.PREDICTOR_IMAGE,
        "service_account": config.SERVICE_ACCOUNT, "cpu_request": config.CPU_REQUEST, "cpu_limit": config.CPU_LIMIT,
        "memory_request": config.MEMORY_REQUEST, "memory_limit": config.MEMORY_LIMIT,
        "min_replicas": config.MIN_REPLICAS, "max_replicas": config.MAX_REPLICAS,
        "canary_traffic_percent": config.CANARY_TRAFFIC_PERCENT, "istio_sidecar": config.ISTIO_SIDECAR,
        "grpc": config.GRPC,
        "ready_timeout_s": config.READY_TIMEOUT_S, "local_port": config.LOCAL_PORT, "target": config.DEPLOY_TARGET,
    }
    assert serving["defaultValue"] == expected  # every knob, with its default (the IR stores numbers as doubles)


def test_every_step_that_touches_s3_gets_the_keys_from_the_secret(compiled):
    _, _, executors = compiled
    assert set(executors) == set(S3_STEPS)  # split and train never see the keys
    for step in S3_STEPS:
        (wiring,) = executors[step]["secretAsEnv"]
        assert wiring["secretNameParameter"]["runtimeValue"]["constant"] == config.S3_SECRET_NAME
        assert {m["secretKey"]: m["envVar"] for m in wiring["keyToEnv"]} == config.S3_SECRET_KEY_TO_ENV
        assert wiring["optional"] is False


def test_no_secret_value_and_no_credential_parameter_in_the_yaml(compiled):
    text, spec, _ = compiled
    for sentinel in SECRET_SENTINELS:
        assert sentinel not in text
    for name in _root_params(spec):
        assert not any(word in name for word in ("secret", "access_key", "password", "token")), name


def test_deploy_is_never_cached_and_network_reads_are_retried(compiled):
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    for step in ("load-data", "evaluate-model"):
        policy = tasks[step]["retryPolicy"]
        assert policy["maxRetryCount"] == config.NETWORK_RETRIES
        assert policy["backoffDuration"] == config.RETRY_BACKOFF
    condition = next(t for name, t in tasks.items() if name.startswith("condition"))
    deploy = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]["deploy-model"]
    assert deploy["cachingOptions"] == {}
    # Deploy retries its own transient API calls; a step retry would push and roll out again after a rollback.
    assert "retryPolicy" not in deploy
    for step in ("split-data", "train-model"):
        assert "retryPolicy" not in tasks[step]


def test_the_deploy_component_has_no_defaults_of_its_own(compiled):
    # Its source is copied verbatim into the step: every value comes from the pipeline (defaults in config).
    _, spec, _ = compiled
    params = spec["components"]["comp-deploy-model"]["inputDefinitions"]["parameters"]
    assert set(params) == {"model_name", "bucket", "s3_endpoint", "serving"}
    assert params["serving"]["parameterType"] == "STRUCT"
    assert all("defaultValue" not in p for p in params.values())
    assert "applied_spec" in spec["components"]["comp-deploy-model"]["outputDefinitions"]["artifacts"]


def test_kfp_local_can_load_the_yaml_with_its_platform_spec(compiled, tmp_path):
    from kfp import components

    text, _, _ = compiled
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    pipeline = components.load_component_from_file(str(path))
    assert "serving" in pipeline.component_spec.inputs
