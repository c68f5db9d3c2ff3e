"""``pipeline.submit`` and ``boston-pipeline submit`` driving the real kfp.Client against an HTTP-level KFP double.

Nothing is mocked inside kfp: the client serialises real requests to a real server on 127.0.0.1
(tests/doubles/kfp_api.py), and the tests check what that server received and what the command printed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boston_model.errors import OneLineError
from components.common.ports import free_port
from pipeline import submit as api
from pipeline.cli import main
from pipeline.runner import compile_pipeline
from pipeline.submit import connection
from pipeline.submit.submission import MAX_POLL_FAILURES
from tests.doubles.kfp_api import FAILING_RUN, FAILURE_MESSAGE, UNAVAILABLE, KfpApiDouble

TOKEN = "t0ken-for-tests"
ERROR_PREFIX = "boston-pipeline submit: error: "
RUN_STATES = ("PENDING", "RUNNING", "SUCCEEDED")


@pytest.fixture(autouse=True)
def isolated_kfp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """kfp.Client reads ~/.config/kfp/context.json and several variables: keep the developer's out of the tests."""
    from kfp.client import client as kfp_client

    monkeypatch.setattr(kfp_client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.setattr(connection, "IN_CLUSTER_TOKEN_FILE", tmp_path / "no-projected-token")
    for name in (api.ENV_HOST, api.ENV_UI_HOST, api.ENV_NAMESPACE, api.ENV_TOKEN, api.ENV_TOKEN_FILE, api.ENV_COOKIES):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline compiled once for the module (compiling is deterministic)."""
    return compile_pipeline(tmp_path_factory.mktemp("compiled") / "boston_housing_pipeline.yaml")


@pytest.fixture
def kfp_api() -> Iterator[KfpApiDouble]:
    with KfpApiDouble(token=TOKEN) as double:
        yield double


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["submit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert err.startswith(ERROR_PREFIX), err
    assert err.count("\n") == 1, f"expected one line, got:\n{err}"
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


def body_of_single(double: KfpApiDouble, method: str, path: str) -> dict[str, Any]:
    calls = double.calls(method, path)
    assert len(calls) == 1, [(c.method, c.path) for c in double.requests]
    return calls[0].json


# --- the Python API ----------------------------------------------------------------------------------------------


def test_submit_compiles_uploads_that_yaml_and_starts_a_run_with_typed_parameters(kfp_api, compiled):
    result = api.submit(kfp_api.url, params={"epochs": "500", "learning_rate": 0.1, "max_rmse": "5.5"},
                        existing_token=TOKEN)

    upload = kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload")
    assert len(upload) == 1
    assert upload[0].query["name"] == "boston-housing"
    assert upload[0].files["uploadfile"].content == compiled.read_bytes()  # byte for byte what compile writes
    assert kfp_api.uploads[result.pipeline_version_id] == compiled.read_bytes()

    run = body_of_single(kfp_api, "POST", "/apis/v2beta1/runs")
    assert run["runtime_config"]["parameters"] == {"epochs": 500, "learning_rate": 0.1, "max_rmse": 5.5}
    assert isinstance(run["runtime_config"]["parameters"]["epochs"], int)
    assert run["pipeline_version_reference"] == {
        "pipeline_id": result.pipeline_id, "pipeline_version_id": result.pipeline_version_id}
    assert run["experiment_id"] == result.experiment_id
    assert kfp_api.experiments[result.experiment_id]["display_name"] == api.DEFAULT_EXPERIMENT
    assert result.new_pipeline is True
    assert result.url == f"{kfp_api.url}/#/runs/details/{result.run_id}"
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in kfp_api.requests)


def test_second_submit_uploads_a_new_version_of_the_same_pipeline(kfp_api, compiled):
    first = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)
    second = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)

    assert (first.new_pipeline, second.new_pipeline) == (True, False)
    assert second.pipeline_id == first.pipeline_id and len(kfp_api.pipelines) == 1
    assert second.pipeline_version_id != first.pipeline_version_id and len(kfp_api.versions) == 2
    version_upload = kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    assert len(version_upload) == 1
    assert version_upload[0].query["pipelineid"] == first.pipeline_id
    assert version_upload[0].query["name"] == second.pipeline_version_name
    assert version_upload[0].files["uploadfile"].content == compiled.read_bytes()
    runs = [c.json for c in kfp_api.calls("POST", "/apis/v2beta1/runs")]
    assert runs[1]["pipeline_version_reference"]["pipeline_version_id"] == second.pipeline_version_id
    assert second.experiment_id == first.experiment_id  # got, not created twice
    assert len(kfp_api.calls("POST", "/apis/v2beta1/experiments")) == 1


def test_wait_for_run_reports_run_and_step_state_changes_in_order(kfp_api, compiled):
    result = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)
    changes: list[api.StateChange] = []

    run = api.wait_for_run(result.client, result.run_id, poll_seconds=0.01, on_change=changes.append)

    assert run.state == "SUCCEEDED"
    assert [c.state for c in changes if c.subject == "run"] == list(RUN_STATES)
    assert changes[-1].subject == "run"  # the run's final state comes after its steps'
    assert ("Train Keras model", "SUCCEEDED") in [(c.subject, c.state) for c in changes]


def test_wait_for_run_returns_a_failed_run_with_its_failed_steps_and_raises_on_timeout(kfp_api, compiled, sleeps):
    kfp_api.run_script = FAILING_RUN
    failed = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)
    run = api.wait_for_run(failed.client, failed.run_id, poll_seconds=0.01)
    assert run.state == "FAILED"
    assert api.describe_run(run) == f"run {failed.run_id} FAILED in step(s) Train Keras model: {FAILURE_MESSAGE}"

    kfp_api.run_script = (("RUNNING", {}),)
    stuck = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)
    sleeps.clear()
    with pytest.raises(TimeoutError, match="still RUNNING after 0.3 s"):
        api.wait_for_run(stuck.client, stuck.run_id, timeout=0.3, poll_seconds=0.05)
    assert sleeps and max(sleeps) <= 0.05 and sum(sleeps) <= 0.3  # polled, and waited no longer than the timeout


def test_wait_for_run_tolerates_a_few_failed_polls_in_a_row_and_counts_afresh_after_a_good_one(kfp_api, compiled):
    blink = (UNAVAILABLE,) * MAX_POLL_FAILURES
    kfp_api.run_script = (("PENDING", {}), *blink, ("RUNNING", {}), *blink, ("SUCCEEDED", {}))
    result = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)
    changes: list[api.StateChange] = []

    run = api.wait_for_run(result.client, result.run_id, poll_seconds=0.01, on_change=changes.append)

    assert run.state == "SUCCEEDED"
    assert [c.state for c in changes] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert len(kfp_api.calls("GET", f"/apis/v2beta1/runs/{result.run_id}")) == len(kfp_api.run_script)


def test_wait_for_run_gives_up_after_one_failed_poll_too_many(kfp_api, compiled):
    kfp_api.run_script = (("PENDING", {}), UNAVAILABLE)
    result = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)

    with pytest.raises(OneLineError, match=f"{kfp_api.url} answered 503"):
        api.wait_for_run(result.client, result.run_id, poll_seconds=0.01)

    assert len(kfp_api.calls("GET", f"/apis/v2beta1/runs/{result.run_id}")) == 1 + MAX_POLL_FAILURES + 1


def test_wait_for_run_stops_at_the_first_client_error(kfp_api, compiled):
    kfp_api.run_script = (("PENDING", {}), (404, {}), ("SUCCEEDED", {}))
    result = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)

    with pytest.raises(OneLineError, match="404 Not Found"):
        api.wait_for_run(result.client, result.run_id, poll_seconds=0.01)
    assert len(kfp_api.calls("GET", f"/apis/v2beta1/runs/{result.run_id}")) == 2


def test_wait_for_run_timeout_is_not_overshot_by_the_poll_interval(kfp_api, compiled, sleeps):
    kfp_api.run_script = (("RUNNING", {}),)
    result = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="still RUNNING after 0.5 s"):
        api.wait_for_run(result.client, result.run_id, timeout=0.5, poll_seconds=30)
    assert time.monotonic() - started >= 0.5  # not undershot
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.5  # a 30 s poll interval is cut to what the timeout leaves
    assert len(kfp_api.calls("GET", f"/apis/v2beta1/runs/{result.run_id}")) == 2  # at the start and at the end


@pytest.mark.server
def test_multi_user_kubeflow_without_namespace_is_a_clear_error(compiled):
    with KfpApiDouble(multi_user=True) as double, pytest.raises(ValueError, match="give --namespace"):
        api.submit(double.url, pipeline_yaml=compiled)
    assert not double.calls("POST", "/apis/v2beta1/pipelines/upload")


# --- the command -------------------------------------------------------------------------------------------------


def test_cli_successful_run_with_wait_shows_states_and_the_url(kfp_api, compiled, capsys):
    code, out, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                         "--namespace", "team-a", "--experiment", "nightly", "--run-name", "try-1",
                         "--param", "epochs=200", "--param", "source=s3://data/boston.csv",
                         "--wait", "--poll-interval", "0.01")

    assert (code, err) == (0, "")
    run = body_of_single(kfp_api, "POST", "/apis/v2beta1/runs")
    assert run["display_name"] == "try-1"
    assert run["runtime_config"]["parameters"] == {"epochs": 200, "source": "s3://data/boston.csv"}
    upload = kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload")[0]
    assert upload.query["namespace"] == "team-a"
    assert upload.files["uploadfile"].content == compiled.read_bytes()
    experiment = body_of_single(kfp_api, "POST", "/apis/v2beta1/experiments")
    assert (experiment["display_name"], experiment["namespace"]) == ("nightly", "team-a")
    assert run["experiment_id"] == next(iter(kfp_api.experiments))

    run_id = next(iter(kfp_api.runs))
    url = f"{kfp_api.url}/#/runs/details/{run_id}"
    assert f"URL:        {url}" in out
    shown = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("    [")]
    assert [s for s in shown if s.startswith("run: ")] == [f"run: {s}" for s in RUN_STATES]
    assert "Train Keras model: SUCCEEDED" in shown
    assert out.rstrip().endswith(f"run SUCCEEDED: {url}")


def test_cli_failed_run_with_wait_exits_non_zero_after_showing_states(kfp_api, compiled, capsys):
    kfp_api.run_script = FAILING_RUN
    code, out, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                         "--wait", "--poll-interval", "0.01")

    assert code == 1
    assert "Train Keras model: FAILED" in out and "run: FAILED" in out
    run_id = next(iter(kfp_api.runs))
    assert_one_error_line(err, f"run {run_id} FAILED", "Train Keras model", FAILURE_MESSAGE,
                          f"{kfp_api.url}/#/runs/details/{run_id}")


def test_cli_wait_timeout_exits_124_and_says_the_run_goes_on(kfp_api, compiled, capsys):
    kfp_api.run_script = (("RUNNING", {}),)
    code, _, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                       "--wait", "--timeout", "0.2", "--poll-interval", "0.05")
    assert code == 124
    assert_one_error_line(err, "still RUNNING", "the run goes on", "/#/runs/details/")


def test_cli_unreachable_host_is_one_line_and_fast(compiled, capsys, sleeps):
    port = free_port()  # just released: nothing listens there
    code, _, err = cli(capsys, "--host", f"http://127.0.0.1:{port}", "--yaml", str(compiled))
    assert code == 2
    assert_one_error_line(err, f"nothing is listening at http://127.0.0.1:{port}", "port-forward")
    assert sleeps == []  # no retry loop: kfp's own health check would pause 5 s between attempts


@pytest.mark.parametrize("credentials", [[], ["--token", "wrong"]], ids=["none", "wrong-token"])
def test_cli_401_is_one_line_naming_the_auth_options(kfp_api, compiled, capsys, credentials, sleeps):
    code, _, err = cli(capsys, "--host", kfp_api.url, "--yaml", str(compiled), *credentials)
    assert code == 2
    assert_one_error_line(err, kfp_api.url, "401 Unauthorized", "--token", "--token-file", "--cookies")
    assert "wrong" not in err  # the secret itself is never echoed
    assert sleeps == []  # kfp's own health check would retry for 25 s, pausing 5 s each time
    assert not kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload")


@pytest.mark.server
@pytest.mark.parametrize("how", ["token-file", "cookies", "env-token", "env-token-file", "env-cookies", "in-cluster"])
def test_cli_authenticates_with_a_token_file_cookies_or_the_environment(compiled, capsys, tmp_path, monkeypatch,
                                                                       how):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    argv = {"token-file": ["--token-file", str(token_file)], "cookies": ["--cookies", "authservice_session=abc"]}
    environment = {"env-token": (api.ENV_TOKEN, TOKEN), "env-token-file": (api.ENV_TOKEN_FILE, str(token_file)),
                   "env-cookies": (api.ENV_COOKIES, "authservice_session=abc")}
    if how in environment:
        monkeypatch.setenv(*environment[how])
    if how == "in-cluster":  # the token Kubeflow projects into a notebook pod
        monkeypatch.setattr(connection, "IN_CLUSTER_TOKEN_FILE", token_file)
    with KfpApiDouble(token=TOKEN, cookie="authservice_session=abc") as double:
        code, out, err = cli(capsys, "--host", double.url, "--yaml", str(compiled), *argv.get(how, []))
        assert (code, err) == (0, "")
        assert len(double.runs) == 1 and "URL:" in out


def test_cli_unknown_parameter_lists_the_valid_ones_and_sends_nothing(kfp_api, compiled, capsys):
    code, _, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                       "--param", "epoch=5")
    assert code == 2
    valid = sorted(api.load_package(compiled).parameters)
    assert_one_error_line(err, "unknown parameter 'epoch'", "did you mean 'epochs'?", ", ".join(valid))
    assert kfp_api.requests == []  # checked before connecting


@pytest.mark.parametrize(("param", "message"), [
    ("epochs=abc", "parameter 'epochs' expects an integer (NUMBER_INTEGER), got 'abc'"),
    ("epochs=2.5", "parameter 'epochs' expects an integer (NUMBER_INTEGER), got '2.5'"),
    ("learning_rate=fast", "parameter 'learning_rate' expects a number (NUMBER_DOUBLE), got 'fast'"),
    ("max_rmse=nan", "parameter 'max_rmse' expects a number (NUMBER_DOUBLE), got 'nan'"),
    ("serving.min_replicas=two", "parameter 'serving.min_replicas' expects an integer (NUMBER_INTEGER), got 'two'"),
    ("serving.istio_sidecar=maybe", "parameter 'serving.istio_sidecar' expects true or false"),
    ("serving.min_replica=2", "unknown key 'min_replica' of parameter 'serving' (did you mean 'min_replicas'?)"),
    ('serving={"replicas": 2}', "unknown key 'replicas' of parameter 'serving'"),
    ("epochs.max=3", "unknown parameter 'epochs.max'"),
])
def test_cli_bad_parameter_value_or_serving_key_is_one_line_and_sends_nothing(kfp_api, compiled, capsys, param,
                                                                              message):
    code, _, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled), "--param", param)
    assert code == 2
    assert_one_error_line(err, message)
    assert kfp_api.requests == []


def test_cli_sets_serving_keys_one_by_one_or_as_json_and_sends_only_those(kfp_api, compiled, capsys):
    code, out, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                         "--param", 'serving={"runtime": "custom", "min_replicas": 1}',
                         "--param", "serving.min_replicas=0", "--param", "serving.istio_sidecar=true")
    assert (code, err) == (0, "")
    run = body_of_single(kfp_api, "POST", "/apis/v2beta1/runs")
    # The keys left out keep their defaults in the deploy step; the one given twice takes the key's own value.
    assert run["runtime_config"]["parameters"] == {
        "serving": {"runtime": "custom", "min_replicas": 0, "istio_sidecar": True}}
    assert isinstance(run["runtime_config"]["parameters"]["serving"]["min_replicas"], int)


def test_cli_recurring_run_sends_the_cron_schedule(kfp_api, compiled, capsys):
    code, out, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                         "--recurring", "0 0 3 * * *", "--max-concurrency", "2", "--param", "epochs=300")
    assert (code, err) == (0, "")
    job = body_of_single(kfp_api, "POST", "/apis/v2beta1/recurringruns")
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert (job["max_concurrency"], job["no_catchup"], job["mode"]) == (2, True, "ENABLE")
    assert job["runtime_config"]["parameters"] == {"epochs": 300}
    assert job["pipeline_version_reference"]["pipeline_version_id"] in kfp_api.versions
    assert not kfp_api.calls("POST", "/apis/v2beta1/runs")
    recurring_id = next(iter(kfp_api.recurring_runs))
    assert f"{kfp_api.url}/#/recurringrun/details/{recurring_id}" in out


def test_cli_recurring_run_the_server_refuses_is_one_line_with_its_reason(kfp_api, compiled, capsys):
    code, _, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                       "--recurring", "0 0 3 * * *", "--max-concurrency", "11")
    assert code == 2
    assert_one_error_line(err, f"{kfp_api.url} answered 400 Bad Request while creating recurring run", "Support 1-10")
    assert not kfp_api.recurring_runs


def test_cli_bad_cron_is_one_line_with_the_6_field_format(kfp_api, compiled, capsys):
    code, _, err = cli(capsys, "--host", kfp_api.url, "--token", TOKEN, "--yaml", str(compiled),
                       "--recurring", "0 3 * * *")
    assert code == 2
    assert_one_error_line(err, "has 5 field(s)", "second minute hour", "'0 0 3 * * *'")
    assert kfp_api.requests == []


def test_cli_host_that_is_not_the_kfp_api_gets_a_404_hint(kfp_api, compiled, capsys):
    code, _, err = cli(capsys, "--host", f"{kfp_api.url}/not-kfp", "--token", TOKEN, "--yaml", str(compiled))
    assert code == 2
    assert_one_error_line(err, "404 Not Found", "--host is the Kubeflow Pipelines API")


@pytest.mark.parametrize(("argv", "message"), [
    (["--wait", "--recurring", "0 0 3 * * *"], "cannot be combined with --recurring"),
    (["--param", "epochs=1", "--param", "epochs=2"], "--param epochs is given twice"),
    (["--timeout", "10"], "apply to --wait"),
    (["--token", "a", "--token-file", "/dev/null"], "either a token or a token file"),
])
def test_cli_rejects_contradictory_options_in_one_line(kfp_api, compiled, capsys, argv, message):
    code, _, err = cli(capsys, "--host", kfp_api.url, "--yaml", str(compiled), *argv)
    assert code == 2
    assert_one_error_line(err, message)


def test_cli_without_a_host_says_how_to_give_one(compiled, capsys):
    code, _, err = cli(capsys, "--yaml", str(compiled))
    assert code == 2
    assert_one_error_line(err, "--host", api.ENV_HOST, "port-forward")


def test_cli_list_params_prints_types_and_defaults(compiled, capsys):
    code, out, _ = cli(capsys, "--yaml", str(compiled), "--list-params")
    assert code == 0
    epochs = next(line for line in out.splitlines() if line.split()[:1] == ["epochs"])
    assert "NUMBER_INTEGER" in epochs and "default 1000" in epochs and "1000.0" not in epochs
    shown = {line.split()[0]: line for line in out.splitlines() if line.startswith("    serving.")}
    assert set(shown) == {f"serving.{key}" for key in api.load_package(compiled).parameters["serving"].default}
    assert "NUMBER_INTEGER" in shown["serving.min_replicas"] and shown["serving.min_replicas"].endswith("default 1")
    assert shown["serving.target"].endswith("default 'kserve'")


# --- pure functions ----------------------------------------------------------------------------------------------


def _package(**types: str) -> api.PipelinePackage:
    specs = {name: api.ParameterSpec(name, kind, optional=True) for name, kind in types.items()}
    return api.PipelinePackage(Path("p.yaml"), "p", "p", "", specs, "0" * 64)


def test_coerce_parameters_converts_strings_by_declared_type():
    package = _package(n="NUMBER_INTEGER", x="NUMBER_DOUBLE", s="STRING", b="BOOLEAN", items="LIST", cfg="STRUCT")
    got = api.coerce_parameters(package, {"n": "7", "x": "1e-3", "s": "7", "b": "False", "items": "[1, 2]",
                                          "cfg": '{"a": 1}'})
    assert got == {"n": 7, "x": 0.001, "s": "7", "b": False, "items": [1, 2], "cfg": {"a": 1}}
    assert api.coerce_parameters(package, {"n": 3, "x": 2, "b": True}) == {"n": 3, "x": 2.0, "b": True}


@pytest.mark.parametrize(("name", "value"), [
    ("n", True), ("n", 2.5), ("x", "inf"), ("s", 5), ("b", "maybe"), ("items", '{"a": 1}'), ("cfg", "[")])
def test_coerce_parameters_rejects_values_of_the_wrong_type(name, value):
    package = _package(n="NUMBER_INTEGER", x="NUMBER_DOUBLE", s="STRING", b="BOOLEAN", items="LIST", cfg="STRUCT")
    with pytest.raises(ValueError, match=f"parameter '{name}' expects"):
        api.coerce_parameters(package, {name: value})


def test_required_parameter_without_a_value_is_reported():
    package = api.PipelinePackage(Path("p.yaml"), "p", "p", "", {"a": api.ParameterSpec("a", "STRING")}, "0" * 64)
    with pytest.raises(ValueError, match="missing value for required parameter"):
        api.coerce_parameters(package, {})


@pytest.mark.parametrize("cron", ["0 0 3 * * *", "0 */15 * * * ?", "0 0 4 * * MON-FRI", "0 30 2 1,15 JAN-JUN *",
                                  "@daily", "@every 1h30m", "  0 0 3  * * *  "])
def test_validate_cron_accepts_kfp_cron(cron):
    assert api.validate_cron(cron) == " ".join(cron.split())


@pytest.mark.parametrize(("cron", "message"), [
    ("0 3 * * *", "prefix a seconds field: '0 0 3 * * *'"), ("0 0 24 * * *", "out of range"),
    ("0 0 3 * 13 *", "out of range"), ("x 0 3 * * *", "is not acceptable"), ("0 0 3 * * FUN", "is not acceptable"),
    ("0 0 MON * * *", "is not acceptable"), ("0 0 3 * * */0", "step '0'"), ("@sometimes", "unknown descriptor"),
    ("", "has 0 field(s)"),
])
def test_validate_cron_explains_what_is_wrong_in_one_line(cron, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        api.validate_cron(cron)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cron", ["0 0 3 * * sun", "0 0 3 ? * *", "0 0 3 * dec/2 *", "5/10 * * * * *"])
def test_validate_cron_reads_names_question_marks_and_steps_as_kfp_does(cron):
    assert api.validate_cron(cron) == cron


@pytest.mark.parametrize(("host", "message"), [
    ("localhost:8080", "must be an http:// or https:// URL"),
    ("http://localhost:8080/#/runs", "without '?…' or '#/…'"),
])
def test_resolve_host_rejects_urls_kfp_would_misread(host, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        api.resolve_host(host)


def test_resolve_host_reads_the_environment(monkeypatch):
    monkeypatch.setenv(api.ENV_HOST, "https://kubeflow.example.com/pipeline/")
    assert api.resolve_host(None) == "https://kubeflow.example.com/pipeline"


def test_links_use_the_ui_host_when_it_differs(kfp_api, compiled):
    result = api.submit(kfp_api.url, pipeline_yaml=compiled, existing_token=TOKEN,
                        ui_host="https://kubeflow.example.com/_/pipeline/")
    assert result.url == f"https://kubeflow.example.com/_/pipeline/#/runs/details/{result.run_id}"
