"""The ``serving`` struct: read into typed settings, defaults for what a run leaves out, one-line errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from boston_model.errors import BadInput
from components import config
from components.deploy.serving import ServingSettings, parse_serving, serving_defaults


def test_an_empty_object_is_every_default_from_config():
    settings = parse_serving({})
    assert settings == ServingSettings()
    assert (settings.target, settings.runtime, settings.min_replicas, settings.local_port) == (
        config.DEPLOY_TARGET, config.SERVING_RUNTIME, config.MIN_REPLICAS, config.LOCAL_PORT)
    assert parse_serving(serving_defaults()) == settings


def test_the_keys_given_override_only_themselves():
    settings = parse_serving({"min_replicas": 2, "runtime": "custom", "istio_sidecar": True})
    assert (settings.min_replicas, settings.runtime, settings.istio_sidecar) == (2, "custom", True)
    assert dataclasses.replace(settings, min_replicas=config.MIN_REPLICAS, runtime=config.SERVING_RUNTIME,
                               istio_sidecar=config.ISTIO_SIDECAR) == ServingSettings()


def test_whole_doubles_are_integers_as_kfp_passes_struct_numbers():
    settings = parse_serving({"max_replicas": 5.0, "ready_timeout_s": 120.0})
    assert (settings.max_replicas, settings.ready_timeout_s) == (5, 120)
    assert isinstance(settings.max_replicas, int)


@pytest.mark.parametrize(("values", "message"), [
    ({"min_replica": 2}, "unknown serving key 'min_replica' (did you mean 'min_replicas'?); the keys are: target,"),
    ({"min_replicas": 2.5}, "serving key 'min_replicas' expects an integer, got 2.5"),
    ({"min_replicas": "2"}, "serving key 'min_replicas' expects an integer, got '2'"),
    ({"max_replicas": True}, "serving key 'max_replicas' expects an integer, got True"),
    ({"istio_sidecar": "yes"}, "serving key 'istio_sidecar' expects true or false, got 'yes'"),
    ({"namespace": 5}, "serving key 'namespace' expects a string, got 5"),
    ({"target": "cloud"}, "unknown deploy target 'cloud': use 'process', 'container' or 'kserve'"),
])
def test_bad_keys_and_values_are_one_line_naming_the_key(values, message):
    with pytest.raises(BadInput, match=re.escape(message)) as info:
        parse_serving(values)
    assert "\n" not in str(info.value)


def test_not_an_object_is_refused():
    with pytest.raises(BadInput, match="serving must be a JSON object"):
        parse_serving(["kserve"])  # type: ignore[arg-type]


def test_the_deploy_step_refuses_a_bad_serving_key_before_it_touches_anything(tmp_path, capsys, monkeypatch):
    from kfp.dsl import Artifact, Dataset, Metrics, Model

    from components.deploy.component import deploy_model

    monkeypatch.delenv("MINIO_ENDPOINT", raising=False)
    missing = str(tmp_path / "absent")  # nothing is read: the settings are checked first
    with pytest.raises(SystemExit) as info:
        deploy_model.python_func(
            model=Model(name="model", uri=missing), predictions=Dataset(name="predictions", uri=missing),
            metrics=Metrics(name="metrics", uri=missing), applied_spec=Artifact(name="spec", uri=missing),
            model_name="m", bucket="b", s3_endpoint="", serving={"target": "kserve", "replicas": 2},
        )
    assert info.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ERROR deploy: unknown serving key 'replicas'")
    assert not Path(missing).exists()


def test_an_unknown_key_with_no_close_match_lists_the_keys_without_a_guess():
    keys = ", ".join(f.name for f in dataclasses.fields(ServingSettings))
    with pytest.raises(BadInput, match="^" + re.escape(f"unknown serving key 'zzz'; the keys are: {keys}") + "$"):
        parse_serving({"zzz": 1})
    with pytest.raises(BadInput, match=re.escape("unknown serving key 7; the keys are: target,")):
        parse_serving({7: 1})  # a non-string key from a Python caller
    with pytest.raises(BadInput, match=re.escape("unknown serving key 'cpu_limits' (did you mean 'cpu_limit'?);")):
        parse_serving({"cpu_limits": "1"})


@pytest.mark.parametrize(("values", "message"), [
    ({"min_replicas": float("inf")}, "serving key 'min_replicas' expects an integer, got inf"),
    ({"min_replicas": float("nan")}, "serving key 'min_replicas' expects an integer, got nan"),
    ({"istio_sidecar": 1}, "serving key 'istio_sidecar' expects true or false, got 1"),
    ({"target": None}, "serving key 'target' expects a string, got None"),
])
def test_values_that_only_look_right_are_refused(values, message):
    with pytest.raises(BadInput, match="^" + re.escape(message) + "$"):
        parse_serving(values)


def test_every_target_is_accepted_and_as_dict_round_trips():
    for target in ("kserve", "process", "container"):
        assert parse_serving({"target": target}).target == target
    settings = parse_serving({"istio_sidecar": False, "min_replicas": 0, "namespace": ""})
    assert settings.as_dict() == serving_defaults() | {"istio_sidecar": False, "min_replicas": 0, "namespace": ""}
    assert parse_serving(settings.as_dict()) == settings
