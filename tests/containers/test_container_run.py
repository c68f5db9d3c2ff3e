"""`boston-pipeline run --runner docker` as a user runs it: every step in the component image, the model served by
the predictor image the way KServe serves a custom container. Tests run in file order on one session's run."""

from __future__ import annotations

import io
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from boston_model.errors import BadInput, ReleaseFailed
from boston_model.store import ObjectStore
from boston_model.versions import MANIFEST, fetch_version, parse_s3_uri, read_champion
from components.deploy import container as ct
from components.deploy import release
from components.deploy.serving import ServingSettings
from pipeline import config
from pipeline.docker_run import require_images
from tests.containers.helpers import ContainerWatch, cli
from tests.load import SteadyLoad

pytestmark = [pytest.mark.container, pytest.mark.slow]

SOCKET = "/var/run/docker.sock"


def _step_functions(state: Path) -> set[str]:
    """The functions the compiled YAML's executors run (one per step)."""
    spec = next(yaml.safe_load_all((state / "compiled" / "boston_housing_pipeline.yaml").read_text()))
    names = set()
    for executor in spec["deploymentSpec"]["executors"].values():
        args = executor["container"]["args"]
        names.add(args[args.index("--function_to_execute") + 1])
    return names


def _steps(created: list[dict]) -> dict[str, dict]:
    """The step containers among those created, by the function they ran."""
    steps = {}
    for attrs in created:
        cmd = attrs["Config"]["Cmd"] or []
        if "--function_to_execute" in cmd:
            steps[cmd[cmd.index("--function_to_execute") + 1]] = attrs
    return steps


def _predictor(docker_client, state: Path, port: int):
    found = docker_client.containers.list(filters={"label": [f"{ct.LABEL}.scope={state}", f"{ct.LABEL}.port={port}",
                                                             f"{ct.LABEL}.role=predictor"]})
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def _evaluate_predictions(state: Path) -> pd.DataFrame:
    newest = max((state / "pipeline_root").glob("*/evaluate-model/predictions"), key=lambda p: p.stat().st_mtime)
    return pd.read_csv(newest)


def test_run_ends_with_the_usual_summary(first_run, port):
    out = first_run.result.stdout
    assert first_run.result.returncode == 0, first_run.result.stdout[-2000:] + first_run.result.stderr[-2000:]
    assert "gate:      PASSED" in out
    assert f"endpoint:  http://127.0.0.1:{port}/v1/models/{config.MODEL_NAME}:predict" in out
    for step in ("load-data", "split-data", "train-model", "evaluate-model", "deploy-model"):
        assert f"[{step}] success" in out


def test_each_step_ran_in_a_container_of_the_component_image(first_run, container_state, images):
    steps = _steps(first_run.created)
    assert set(steps) == _step_functions(container_state) and len(steps) == 5
    for function, attrs in steps.items():
        assert attrs["Config"]["Image"] == images["component"], function
        uid = attrs["Config"]["User"].split(":")[0]
        assert uid and uid != "0", f"{function} ran as root"
        assert attrs["HostConfig"]["NetworkMode"] == "host"  # clients only: no step publishes anything


def test_only_the_deploy_step_gets_the_engine_socket(first_run):
    steps = _steps(first_run.created)
    assert len(steps) == 5 and "deploy_model" in steps, sorted(steps)  # not vacuous on an empty capture
    for function, attrs in steps.items():
        binds = attrs["HostConfig"]["Binds"] or []
        has_socket = any(bind.split(":")[1] == SOCKET for bind in binds)
        assert has_socket == (function == "deploy_model"), (function, binds)


def test_the_version_and_its_manifest_are_in_s3(first_run, store_settings, tmp_path):
    champion = read_champion(ObjectStore(store_settings), config.BUCKET, config.MODEL_NAME)
    assert champion is not None
    bucket, prefix = parse_s3_uri(champion["uri"])
    assert f"{prefix.rstrip('/')}/{MANIFEST}" in ObjectStore(store_settings).list_keys(bucket, prefix)
    manifest = fetch_version(ObjectStore(store_settings), champion["uri"], tmp_path / "copy")  # verifies sha256s
    assert {"boston_model.json", "1/saved_model.pb"} <= set(manifest["files"])


def test_the_predictor_runs_the_builder_shape_as_non_root(first_run, docker_client, container_state, port,
                                                          store_settings, images):
    container = _predictor(docker_client, container_state, port)
    attrs = container.attrs
    champion = read_champion(ObjectStore(store_settings), config.BUCKET, config.MODEL_NAME)
    shape = ct.custom_container(config.MODEL_NAME, champion["uri"])
    assert attrs["Config"]["Image"] == images["predictor"]
    assert attrs["Config"]["Cmd"] == [*shape.args, "--takeover", f"{ct.HANDOVER_MOUNT}/listener.sock"]
    assert attrs["Config"]["Entrypoint"] == ["boston-predictor"]
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert {k: env.get(k) for k in shape.env} == dict(shape.env)
    assert not [k for k in env if k.startswith(("AWS_", "MINIO_", "S3_"))], "the predictor holds S3 settings"
    assert attrs["HostConfig"]["NetworkMode"] != "host"
    # Published on loopback only, on the trial port the release smoke-tested; the public port is the socket it took
    # over through the handover folder (the only other mount).
    [binding] = attrs["HostConfig"]["PortBindings"][f"{shape.port}/tcp"]
    assert binding["HostIp"] == "127.0.0.1" and binding["HostPort"] != str(port)
    # V2 over gRPC, as on the cluster, published on loopback only; the champion record says where.
    [grpc] = attrs["HostConfig"]["PortBindings"][f"{shape.grpc_port}/tcp"]
    assert grpc["HostIp"] == "127.0.0.1" and champion["grpc"] == f"127.0.0.1:{grpc['HostPort']}"
    with socket.create_connection(("127.0.0.1", int(grpc["HostPort"])), timeout=10):
        pass  # something listens there (tests/kserve/test_grpc.py speaks the protocol to the same server)
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts[shape.model_mount]["RW"] is False and set(mounts) == {shape.model_mount, ct.HANDOVER_MOUNT}
    code, out = container.exec_run(["id", "-u"])
    assert code == 0 and out.decode().strip() not in ("", "0")


def test_live_v1_and_v2_predictions_equal_evaluate(first_run, container_state, port, store_settings):
    frame = _evaluate_predictions(container_state)
    champion = read_champion(ObjectStore(store_settings), config.BUCKET, config.MODEL_NAME)
    rows = frame[champion["feature_names"]].to_numpy(dtype=np.float64)
    url = f"http://127.0.0.1:{port}"
    v1 = requests.post(f"{url}/v1/models/{config.MODEL_NAME}:predict", json={"instances": rows.tolist()}, timeout=30)
    assert v1.status_code == 200, v1.text
    v2 = requests.post(f"{url}/v2/models/{config.MODEL_NAME}/infer", timeout=30, json={"inputs": [{
        "name": "features", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]})
    assert v2.status_code == 200, v2.text
    expected = frame["prediction"].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(np.asarray(v1.json()["predictions"], dtype=np.float64).ravel(), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(v2.json()["outputs"][0]["data"], dtype=np.float64), expected, atol=1e-5)
    mse = float(np.mean((np.asarray(v1.json()["predictions"]).ravel() - frame["MEDV"].to_numpy()) ** 2))
    assert mse <= 24.5, f"container-served test MSE {mse:.3f}"


def _contains(stream, needles: list[bytes], chunk: int = 1 << 22) -> list[bytes]:
    """Which of ``needles`` occur in a byte stream (read in chunks that overlap by the longest needle)."""
    found, tail, keep = set(), b"", max(map(len, needles))
    for block in iter(lambda: stream.read(chunk), b""):
        window = tail + block
        found.update(n for n in needles if n in window)
        tail = window[-keep:]
    return sorted(found)


def test_no_store_key_in_any_layer_image_config_or_log(first_run, docker_client, images, container_state, port,
                                                       store_settings):
    secrets = [store_settings.secret_key.encode(), store_settings.access_key.encode()]
    assert {"component", "predictor"} <= set(images) and all(secrets)  # nothing vacuous below
    for image in images.values():
        # Every layer and the image config, as `docker save` writes them (the CLI streams far faster than the SDK).
        with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as saved:
            assert _contains(saved.stdout, secrets) == [], f"a store key is inside {image}"
        assert saved.returncode == 0
        history = str(docker_client.api.history(image)) + str(docker_client.api.inspect_image(image))
        assert not [s for s in secrets if s.decode() in history], image
    logs = _predictor(docker_client, container_state, port).logs()
    run_logs = first_run.result.stdout + first_run.result.stderr
    run_logs += "".join(p.read_text() for p in (container_state / "logs").glob("*.log"))
    assert logs and run_logs  # a secret is trivially absent from an empty capture
    for secret in secrets:
        assert secret not in logs
        assert secret.decode() not in run_logs


def test_a_missing_image_is_one_line_naming_the_build_command(docker_client):
    with pytest.raises(BadInput) as raised:
        require_images(docker_client, ["localhost/boston-housing-kfp/not-built:0"])
    assert "make image-local" in str(raised.value) and "\n" not in str(raised.value)


def test_a_failed_start_keeps_the_champion_serving_and_says_why(first_run, docker_client, images, container_state,
                                                                port, store_settings):
    broken = f"localhost/boston-housing-kfp/broken-predictor:test-{os.getpid()}"
    dockerfile = (f"FROM {images['predictor']}\nENTRYPOINT [\"python3\", \"-c\", \"import sys; "
                  "print('model folder unreadable (simulated)', file=sys.stderr); sys.exit(3)\"]\n")
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=broken, rm=True)
    store = ObjectStore(store_settings)
    before = read_champion(store, config.BUCKET, config.MODEL_NAME)
    newest = max((container_state / "pipeline_root").glob("*/train-model/model"), key=lambda p: p.stat().st_mtime)
    target = ct.ContainerTarget(store, config.MODEL_NAME, port, broken, images["component"], str(container_state),
                                client=docker_client, log=lambda _: None)
    settings = ServingSettings(target="container", local_port=port, predictor_image=broken)
    smoke = release.Smoke.from_predictions(_evaluate_predictions(container_state), before["feature_names"])
    try:
        with pytest.raises(ReleaseFailed) as raised:
            release.deploy(store, config.BUCKET, config.MODEL_NAME, newest, {}, target, settings, smoke,
                           log=lambda _: None)
    finally:
        docker_client.images.remove(broken, force=True)
    message = str(raised.value)
    assert "model folder unreadable (simulated)" in message and f"champion {before['version']} keeps serving" \
        in message
    assert "\n" not in message
    assert read_champion(store, config.BUCKET, config.MODEL_NAME)["version"] == before["version"]
    served = ct.find_served(docker_client, str(container_state), port)
    assert served is not None and served.uri == before["uri"]
    assert _predictor(docker_client, container_state, port).attrs["Config"]["Image"] == images["predictor"]
    live = requests.post(f"{served.url}/v1/models/{config.MODEL_NAME}:predict", timeout=30,
                         json={"instances": [[0.0] * len(before["feature_names"])]})
    assert live.status_code == 200


def test_a_second_run_replaces_the_container(first_run, docker_client, cli_env, container_state, port,
                                             store_settings, images):
    store = ObjectStore(store_settings)
    before = read_champion(store, config.BUCKET, config.MODEL_NAME)
    old = _predictor(docker_client, container_state, port)
    url = f"http://127.0.0.1:{port}/v1/models/{config.MODEL_NAME}:predict"
    rows = _evaluate_predictions(container_state)[before["feature_names"]].to_numpy(dtype=np.float64)[:1]
    with ContainerWatch(docker_client), SteadyLoad(url, rows, limit_s=600) as load:
        result = cli("run", "--runner", "docker", "--port", str(port), "--cache", "--image", images["component"],
                     "--predictor-image", images["predictor"], env=cli_env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # The release handed the public socket from the old container to the new one: no request failed meanwhile.
    assert load.failures == [] and len(load.answers) > 20
    after = read_champion(store, config.BUCKET, config.MODEL_NAME)
    assert after["version"] != before["version"] and after["previous"] == before["version"]
    new = _predictor(docker_client, container_state, port)
    assert new.id != old.id and new.labels[f"{ct.LABEL}.uri"] == after["uri"]
    volumes = docker_client.volumes.list(filters={"label": f"{ct.LABEL}.scope={container_state}"})
    assert len(volumes) == 1


def test_rollback_on_the_container_target_serves_the_previous_version_without_a_gap(
        first_run, docker_client, cli_env, container_state, port, store_settings):
    store = ObjectStore(store_settings)
    before = read_champion(store, config.BUCKET, config.MODEL_NAME)
    assert before["target"] == "container" and before["previous"]  # the second run replaced the first
    url = f"http://127.0.0.1:{port}/v1/models/{config.MODEL_NAME}:predict"
    rows = _evaluate_predictions(container_state)[before["feature_names"]].to_numpy(dtype=np.float64)[:1]
    with SteadyLoad(url, rows, limit_s=300) as load:
        result = cli("models", "rollback", env=cli_env)  # the target and images come from the champion record
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert load.failures == [] and len(load.answers) > 10
    after = read_champion(store, config.BUCKET, config.MODEL_NAME)
    assert after["version"] == before["previous"] and after["target"] == "container"
    served = ct.find_served(docker_client, str(container_state), port)
    assert served is not None and served.uri == after["uri"]
    assert len(docker_client.containers.list(filters={"label": [f"{ct.LABEL}.scope={container_state}",
                                                               f"{ct.LABEL}.role=predictor"]})) == 1


def test_down_stops_the_predictor_container(first_run, docker_client, cli_env, container_state, port):
    result = cli("down", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert f"stopped the predictor container {config.MODEL_NAME}-predictor-{port}" in result.stdout
    scope = {"label": f"{ct.LABEL}.scope={container_state}"}
    assert docker_client.containers.list(all=True, filters=scope) == []
    assert docker_client.volumes.list(filters=scope) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v1/models/{config.MODEL_NAME}", timeout=5)


def test_the_images_are_labelled_non_root_and_only_the_component_image_has_tensorflow(docker_client, images):
    import kfp

    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    for image in images.values():
        config_ = docker_client.images.get(image).attrs["Config"]
        labels = config_["Labels"]
        assert labels["org.opencontainers.image.version"] == "0.1.0"
        assert labels["org.opencontainers.image.source"].startswith("https://")
        if revision.returncode == 0:
            assert labels["org.opencontainers.image.revision"].startswith(revision.stdout.strip())
        assert config_["User"] not in ("", "0", "root")
    probe = "import importlib.util as u, kfp; print(kfp.__version__, u.find_spec('tensorflow') is not None)"
    component = docker_client.containers.run(images["component"], ["python3", "-c", probe], remove=True)
    lean = "import importlib.util as u; print(u.find_spec('tensorflow') is None, u.find_spec('kserve') is not None)"
    predictor = docker_client.containers.run(images["predictor"], ["-c", lean], entrypoint="python3", remove=True)
    assert component.decode().split() == [kfp.__version__, "True"]  # the SDK that compiled the YAML runs it
    assert predictor.decode().split() == ["True", "True"]
