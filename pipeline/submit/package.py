"""The compiled pipeline as submitting sees it: its name, its declared parameters, and run arguments typed to them.

kfp sends run arguments as given and leaves the checking to the step that reads them; here they are checked against
the compiled YAML, before any server is contacted.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boston_model.errors import first_line


@dataclass(frozen=True)
class ParameterSpec:
    """One pipeline parameter as the compiled YAML declares it (``root.inputDefinitions.parameters``)."""

    name: str
    type: str  # NUMBER_DOUBLE, NUMBER_INTEGER, STRING, BOOLEAN, LIST or STRUCT
    default: Any = None
    description: str = ""
    optional: bool = False


@dataclass(frozen=True)
class PipelinePackage:
    """A compiled pipeline file and what submitting it needs from it."""

    path: Path
    name: str
    display_name: str
    description: str
    parameters: dict[str, ParameterSpec]
    sha256: str


def load_package(path: str | Path) -> PipelinePackage:
    """Reads a compiled pipeline YAML (the IR that ``boston-pipeline compile`` writes).

    Raises:
        ValueError: The file is not a compiled KFP pipeline.
        OSError: The file cannot be read.
    """
    import yaml

    path = Path(path)
    data = path.read_bytes()
    try:
        spec = next(yaml.safe_load_all(data), None)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {first_line(exc)}") from exc
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise ValueError(f"{path} is not a compiled KFP pipeline (no pipelineInfo/root); "
                         "write one with `boston-pipeline compile`")
    info = spec["pipelineInfo"]
    parameters = {
        name: ParameterSpec(name, str(d.get("parameterType", "STRING")), _default(d), str(d.get("description", "")),
                            bool(d.get("isOptional", False)))
        for name, d in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items()
    }
    return PipelinePackage(path, str(info["name"]), str(info.get("displayName") or info["name"]),
                           str(info.get("description", "")), parameters, hashlib.sha256(data).hexdigest())


def _default(declared: Mapping[str, Any]) -> Any:
    value = declared.get("defaultValue")
    # The IR stores every number as a double (epochs: 1000.0); show an integer parameter's default as one.
    if declared.get("parameterType") == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_TYPES = {"NUMBER_DOUBLE": (float, "a number"), "NUMBER_INTEGER": (int, "an integer"), "STRING": (str, "a string"),
          "BOOLEAN": (bool, "true or false"), "LIST": (list, "a JSON list"), "STRUCT": (dict, "a JSON object")}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def coerce_parameters(package: PipelinePackage, values: Mapping[str, Any]) -> dict[str, Any]:
    """Checks run arguments against the pipeline's declared parameters and converts them to the declared types.

    Values may be strings (as ``--param key=value`` gives them) or Python values; strings are converted by the
    parameter's type: NUMBER_DOUBLE -> float, NUMBER_INTEGER -> int, BOOLEAN -> bool, LIST/STRUCT -> JSON.
    One key of a struct parameter may be given on its own as ``name.key`` (``serving.min_replicas=2``); a struct
    whose default is an object takes only that object's keys, each typed like its default value.

    Returns:
        The arguments to send; parameters (and struct keys) left out take the pipeline's defaults.

    Raises:
        ValueError: An unknown name or struct key (the message lists the valid ones), a value of the wrong type,
            or a required parameter without a value.
    """
    converted: dict[str, Any] = {}
    keyed: dict[str, dict[str, Any]] = {}  # struct keys given one by one: {"serving": {"min_replicas": "2"}}
    for name, value in values.items():
        base, dotted, key = name.partition(".")
        spec = package.parameters.get(base)
        if spec is None or (dotted and spec.type != "STRUCT"):
            raise ValueError(f"unknown parameter {name!r}{_did_you_mean(base, package.parameters)}; the "
                             f"pipeline's parameters are: {', '.join(sorted(package.parameters))}")
        if dotted:
            keyed.setdefault(base, {})[key] = value
        else:
            converted[name] = _coerce(spec, value)
    for name, given in keyed.items():
        converted[name] = {**converted.get(name, {}), **given}
    for name, value in converted.items():
        keys = {k.name.partition(".")[2]: k for k in struct_keys(package.parameters[name])}
        if keys:
            converted[name] = {key: _coerce(_struct_key(name, key, keys), v) for key, v in value.items()}
    missing = [s.name for s in package.parameters.values() if not s.optional and s.name not in converted]
    if missing:
        raise ValueError(f"missing value for required parameter(s): {', '.join(missing)}")
    return converted


def struct_keys(spec: ParameterSpec) -> list[ParameterSpec]:
    """The keys of a struct parameter whose default is a JSON object, as ``name.key`` specs typed by their defaults.

    The IR stores every number as a double, so a whole-number default (``min_replicas: 1.0``) is read as an integer.
    """
    if spec.type != "STRUCT" or not isinstance(spec.default, dict):
        return []
    specs = []
    for key, default in spec.default.items():
        kind = next((k for k, (t, _) in _TYPES.items() if type(default) is t), "")
        if kind == "NUMBER_DOUBLE" and default.is_integer():
            kind, default = "NUMBER_INTEGER", int(default)
        specs.append(ParameterSpec(f"{spec.name}.{key}", kind, default, optional=True))
    return specs


def _struct_key(name: str, key: str, keys: Mapping[str, ParameterSpec]) -> ParameterSpec:
    if key not in keys:
        raise ValueError(f"unknown key {key!r} of parameter {name!r}{_did_you_mean(key, keys)}; its keys are: "
                         f"{', '.join(keys)}")
    return keys[key]


def _did_you_mean(name: str, valid: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(spec: ParameterSpec, given: Any) -> Any:
    if spec.type not in _TYPES:
        return given  # a type this SDK version does not know: the server decides
    wanted, words = _TYPES[spec.type]
    value = given
    try:
        if isinstance(given, str) and wanted is bool and given.strip().lower() in _TRUE | _FALSE:
            value = given.strip().lower() in _TRUE
        elif isinstance(given, str) and wanted in (int, list, dict):
            value = int(given) if wanted is int else json.loads(given)
        elif isinstance(given, str | int) and not isinstance(given, bool) and wanted is float:
            value = float(given)
    except ValueError:
        pass  # left as given: refused below
    # bool is an int to Python, not to the pipeline; JSON has no NaN or Infinity, so the server would refuse them.
    if (not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool))
            or (wanted is float and not math.isfinite(value))):
        raise ValueError(f"parameter {spec.name!r} expects {words} ({spec.type}), got {given!r}")
    return value
