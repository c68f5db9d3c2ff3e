"""Checking before sending: the compiled YAML's parameters, run arguments typed to them, and KFP's cron.

Pure code (pipeline/submit/package.py and cron.py) on small hand-written pipeline files: no server, no compile.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.submit.cron import CRON_HELP, validate_cron
from pipeline.submit.package import ParameterSpec, PipelinePackage, coerce_parameters, load_package, struct_keys

IR = """\
pipelineInfo:
  name: boston-housing
  displayName: Boston Housing
  description: trains and serves
root:
  inputDefinitions:
    parameters:
      epochs:
        parameterType: NUMBER_INTEGER
        defaultValue: 1000.0
        description: passes over the data
        isOptional: true
      rate:
        parameterType: NUMBER_DOUBLE
        defaultValue: 0.5
        isOptional: true
      source:
        parameterType: STRING
      untyped: {}
      serving:
        parameterType: STRUCT
        isOptional: true
        defaultValue: {min_replicas: 1.0, share: 0.5, target: process, istio: false, tags: [a]}
"""


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.fixture
def package(tmp_path: Path) -> PipelinePackage:
    path = tmp_path / "p.yaml"
    path.write_text(IR)
    return load_package(path)


def test_the_package_is_read_from_the_ir(package: PipelinePackage, tmp_path: Path) -> None:
    assert (package.path, package.name, package.display_name, package.description) == (
        tmp_path / "p.yaml", "boston-housing", "Boston Housing", "trains and serves")
    assert package.sha256 == hashlib.sha256(IR.encode()).hexdigest()
    assert package.parameters["epochs"] == ParameterSpec("epochs", "NUMBER_INTEGER", 1000, "passes over the data",
                                                         True)
    assert type(package.parameters["epochs"].default) is int  # the IR's 1000.0, shown as the integer it is
    assert package.parameters["rate"] == ParameterSpec("rate", "NUMBER_DOUBLE", 0.5, "", True)
    assert package.parameters["source"] == ParameterSpec("source", "STRING", None, "", False)
    assert package.parameters["untyped"] == ParameterSpec("untyped", "STRING", None, "", False)


def test_a_bare_pipeline_takes_its_name_as_display_name_and_has_no_parameters(tmp_path: Path) -> None:
    path = tmp_path / "bare.yaml"
    path.write_text("pipelineInfo: {name: bare}\nroot: {dag: {}}\n---\nplatforms: {}\n")
    package = load_package(path)
    assert (package.name, package.display_name, package.description, package.parameters) == ("bare", "bare", "", {})
    path.write_text("pipelineInfo: {name: bare, displayName: ''}\nroot: {inputDefinitions: {}}\n")
    assert load_package(path).display_name == "bare" and load_package(path).parameters == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: [1\n", r"is not valid YAML: while parsing a flow sequence$"),
     ("", r"is not a compiled KFP pipeline \(no pipelineInfo/root\); write one with `boston-pipeline compile`$"),
     ("- 1\n", r"is not a compiled KFP pipeline \(no pipelineInfo/root\)"),
     ("pipelineInfo: {name: x}\n", r"is not a compiled KFP pipeline \(no pipelineInfo/root\)"),
     ("root: {}\n", r"is not a compiled KFP pipeline \(no pipelineInfo/root\)")],
    ids=["yaml", "empty", "list", "no-root", "no-info"],
)
def test_what_is_not_a_pipeline_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))} {message}"):
        load_package(path)


def test_values_are_converted_to_the_declared_types(package: PipelinePackage) -> None:
    given = {"epochs": "20", "rate": "0.25", "source": "s3://b/k", "untyped": "kept"}
    assert coerce_parameters(package, given) == {"epochs": 20, "rate": 0.25, "source": "s3://b/k", "untyped": "kept"}
    assert coerce_parameters(package, {"rate": 2, "source": "x", "untyped": "u"}) == \
        {"rate": 2.0, "source": "x", "untyped": "u"}
    assert type(coerce_parameters(package, {"rate": 2, "source": "x", "untyped": "u"})["rate"]) is float
    # a type this SDK does not know is passed as given: the server decides
    future = PipelinePackage(Path("p"), "p", "p", "", {"t": ParameterSpec("t", "TASK_FINAL_STATUS")}, "")
    assert coerce_parameters(future, {"t": {"any": 1}}) == {"t": {"any": 1}}


@pytest.mark.parametrize(("text", "value"), [("true", True), (" Yes ", True), ("1", True), ("ON", True),
                                             ("false", False), ("no", False), ("0", False), (" Off", False)])
def test_booleans_read_the_usual_words(text: str, value: bool) -> None:
    package = PipelinePackage(Path("p"), "p", "p", "", {"b": ParameterSpec("b", "BOOLEAN")}, "")
    assert coerce_parameters(package, {"b": text}) == {"b": value}


def test_lists_and_structs_are_json() -> None:
    package = PipelinePackage(Path("p"), "p", "p", "", {"l": ParameterSpec("l", "LIST"),
                                                        "d": ParameterSpec("d", "STRUCT")}, "")
    assert coerce_parameters(package, {"l": "[1, 2]", "d": '{"a": 1}'}) == {"l": [1, 2], "d": {"a": 1}}
    assert coerce_parameters(package, {"l": [3], "d": {"b": 2}}) == {"l": [3], "d": {"b": 2}}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("epochs", "2.5", "parameter 'epochs' expects an integer (NUMBER_INTEGER), got '2.5'"),
     ("epochs", True, "parameter 'epochs' expects an integer (NUMBER_INTEGER), got True"),
     ("rate", "nan", "parameter 'rate' expects a number (NUMBER_DOUBLE), got 'nan'"),
     ("rate", float("inf"), "parameter 'rate' expects a number (NUMBER_DOUBLE), got inf"),
     ("rate", False, "parameter 'rate' expects a number (NUMBER_DOUBLE), got False"),
     ("rate", "fast", "parameter 'rate' expects a number (NUMBER_DOUBLE), got 'fast'"),
     ("source", 5, "parameter 'source' expects a string (STRING), got 5")],
)
def test_a_wrong_value_names_the_parameter_and_its_type(package: PipelinePackage, name: str, value: Any,
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        coerce_parameters(package, {"source": "x", "untyped": "u", name: value})


def test_unknown_names_get_the_nearest_one_and_the_list(package: PipelinePackage) -> None:
    valid = "the pipeline's parameters are: epochs, rate, serving, source, untyped"
    with pytest.raises(ValueError, match=exactly(f"unknown parameter 'epoch' (did you mean 'epochs'?); {valid}")):
        coerce_parameters(package, {"epoch": 3})
    with pytest.raises(ValueError, match=exactly(f"unknown parameter 'zzz'; {valid}")):
        coerce_parameters(package, {"zzz": 3})
    with pytest.raises(ValueError, match=exactly(f"unknown parameter 'rate.x' (did you mean 'rate'?); {valid}")):
        coerce_parameters(package, {"rate.x": 3})  # only a struct has keys


def test_a_required_parameter_left_out_is_named(package: PipelinePackage) -> None:
    with pytest.raises(ValueError, match=r"^missing value for required parameter\(s\): source, untyped$"):
        coerce_parameters(package, {})
    with pytest.raises(ValueError, match=r"^missing value for required parameter\(s\): untyped$"):
        coerce_parameters(package, {"source": "x"})


def test_struct_keys_are_typed_by_their_defaults(package: PipelinePackage) -> None:
    assert struct_keys(package.parameters["serving"]) == [
        ParameterSpec("serving.min_replicas", "NUMBER_INTEGER", 1, optional=True),
        ParameterSpec("serving.share", "NUMBER_DOUBLE", 0.5, optional=True),
        ParameterSpec("serving.target", "STRING", "process", optional=True),
        ParameterSpec("serving.istio", "BOOLEAN", False, optional=True),
        ParameterSpec("serving.tags", "LIST", ["a"], optional=True)]
    assert struct_keys(package.parameters["rate"]) == []
    assert struct_keys(ParameterSpec("s", "STRUCT", None)) == []
    assert struct_keys(ParameterSpec("s", "STRUCT", {"odd": None})) == [ParameterSpec("s.odd", "", None,
                                                                                      optional=True)]


def test_struct_keys_one_by_one_or_as_json_are_typed_and_merged(package: PipelinePackage) -> None:
    required = {"source": "x", "untyped": "u"}
    sent = coerce_parameters(package, {**required, "serving.min_replicas": "2", "serving.istio": "yes"})
    assert sent["serving"] == {"min_replicas": 2, "istio": True}
    sent = coerce_parameters(package, {**required, "serving": '{"target": "kserve", "share": 1}',
                                       "serving.min_replicas": "3"})
    assert sent["serving"] == {"target": "kserve", "share": 1.0, "min_replicas": 3}
    sent = coerce_parameters(package, {**required, "serving": {"min_replicas": 1}, "serving.min_replicas": "4"})
    assert sent["serving"] == {"min_replicas": 4}  # a key given on its own wins over the object's


@pytest.mark.parametrize(
    ("given", "message"),
    [({"serving.min_replica": "2"}, "unknown key 'min_replica' of parameter 'serving' (did you mean "
                                    "'min_replicas'?); its keys are: min_replicas, share, target, istio, tags"),
     ({"serving.zzz": "2"}, "unknown key 'zzz' of parameter 'serving'; its keys are: min_replicas, share, target, "
                            "istio, tags"),
     ({"serving": '{"zzz": 1}'}, "unknown key 'zzz' of parameter 'serving'; its keys are: min_replicas, share, "
                                 "target, istio, tags"),
     ({"serving.min_replicas": "two"}, "parameter 'serving.min_replicas' expects an integer (NUMBER_INTEGER), "
                                       "got 'two'")],
)
def test_struct_key_errors_name_the_key(package: PipelinePackage, given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        coerce_parameters(package, {"source": "x", "untyped": "u", **given})


# --- cron -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 5-5 3 * * *", "0 */1 * * * *", "0 0/1 3 * * *", "? 0 3 * * *", "0 ? 3 * * *",
                                  "0 0 ? * * *", "@hourly", "@every 6h", "@every 1h30m", "@every 90s",
                                  "@every 1.5h", "@every 500ms"])
def test_cron_forms_kfp_reads_are_accepted(cron: str) -> None:
    assert validate_cron(cron) == cron


@pytest.mark.parametrize("duration", ["garbage", "6", "h", "6 h", "6hours", "-1h", "1h 30m", "1h30"])
def test_every_needs_a_go_duration(duration: str) -> None:
    cron = f"@every {duration}"
    normalised = " ".join(duration.split())
    message = (f"cron {cron!r}: {normalised!r} is not a duration; use a number and a unit (s, m, h), e.g. "
               "'@every 6h' or '@every 1h30m'")
    with pytest.raises(ValueError, match=exactly(message)):
        validate_cron(cron)


def test_cron_messages_are_exact() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "cron '@often': unknown descriptor; use @hourly, @daily, @weekly, @monthly, @yearly or "
            "'@every <duration>' such as '@every 6h'") + "$"):
        validate_cron("@often")
    with pytest.raises(ValueError, match=exactly(f"cron '0 3 * *' has 4 field(s); KFP's cron has {CRON_HELP}")):
        validate_cron("0 3 * *")
    with pytest.raises(ValueError, match=re.escape(
            f"cron '0 3 * * *' has 5 field(s); KFP's cron has {CRON_HELP}; prefix a seconds field: '0 0 3 * * *'")):
        validate_cron("0 3 * * *")
    with pytest.raises(ValueError, match=exactly(f"cron '   ' has 0 field(s); KFP's cron has {CRON_HELP}")):
        validate_cron("   ")
    with pytest.raises(ValueError, match=r"^cron '0 0 3 \* \* \* \*' has 7 field\(s\)"):
        validate_cron("0 0 3 * * * *")
    with pytest.raises(ValueError, match=re.escape(f"(KFP's cron has {CRON_HELP})") + "$"):
        validate_cron("0 0 24 * * *")


def test_integers_read_as_python_reads_them_and_defaults_keep_their_declared_type(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("pipelineInfo: {name: p}\nroot: {inputDefinitions: {parameters: {"
                    "whole: {parameterType: NUMBER_DOUBLE, defaultValue: 1.0, isOptional: true}, "
                    "count: {parameterType: NUMBER_INTEGER}, "
                    "cfg: {parameterType: STRUCT, isOptional: true, defaultValue: {a.b: 1.0}}}}}\n")
    package = load_package(path)
    assert type(package.parameters["whole"].default) is float  # a double stays a double, even when whole
    assert package.parameters["count"].default is None
    assert coerce_parameters(package, {"count": "+5"}) == {"count": 5}  # int() reads a sign; JSON would not
    sent = coerce_parameters(package, {"count": "1_000", "cfg.a.b": "3"})  # a struct key may itself hold a dot
    assert sent == {"count": 1000, "cfg": {"a.b": 3}}
