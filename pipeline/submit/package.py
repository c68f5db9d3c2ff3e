"""The compiled pipeline as submitting sees it: its name, its declared parameters, and run arguments typed to them.

Everything here is checked locally, before any server is contacted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boston_model.errors import first_line
from pipeline.submit.errors import ParameterError, SubmitError


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
        SubmitError: The file is missing or is not a compiled KFP pipeline.
    """
    import yaml

    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise SubmitError(f"{path}: expected a compiled pipeline .yaml (from `boston-pipeline compile`)")
    try:
        data = path.read_bytes()
        spec = next(yaml.safe_load_all(data), None)
    except OSError as exc:
        raise SubmitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SubmitError(f"{path} is not valid YAML: {first_line(exc)}") from exc
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise SubmitError(f"{path} is not a compiled KFP pipeline (no pipelineInfo/root); "
                          "write one with `boston-pipeline compile`")
    info = spec["pipelineInfo"]
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    parameters = {
        name: ParameterSpec(name, str(d.get("parameterType", "STRING")), _default(d),
                            str(d.get("description", "")), bool(d.get("isOptional", False)))
        for name, d in declared.items()
    }
    return PipelinePackage(
        path=path, name=str(info["name"]), display_name=str(info.get("displayName") or info["name"]),
        description=str(info.get("description", "")), parameters=parameters,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _default(declared: Mapping[str, Any]) -> Any:
    value = declared.get("defaultValue")
    # The IR stores every number as a double (epochs: 1000.0); show an integer parameter's default as one.
    if declared.get("parameterType") == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_TYPE_WORDS = {
    "NUMBER_DOUBLE": "a number", "NUMBER_INTEGER": "an integer", "STRING": "a string",
    "BOOLEAN": "true or false", "LIST": "a JSON list", "STRUCT": "a JSON object",
}
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
        ParameterError: An unknown name or struct key (the message lists the valid ones), a value of the wrong
            type, or a required parameter without a value.
    """
    converted: dict[str, Any] = {}
    keyed: dict[str, dict[str, Any]] = {}  # struct keys given one by one: {"serving": {"min_replicas": "2"}}
    for name, value in values.items():
        base, dotted, key = name.partition(".")
        spec = package.parameters.get(base)
        if spec is None or (dotted and spec.type != "STRUCT"):
            raise ParameterError(f"unknown parameter {name!r}{_did_you_mean(base, package.parameters)}; the "
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
        raise ParameterError(f"missing value for required parameter(s): {', '.join(missing)}")
    return converted


def struct_keys(spec: ParameterSpec) -> list[ParameterSpec]:
    """The keys of a struct parameter whose default is a JSON object, as ``name.key`` specs typed by their defaults.

    The IR stores every number as a double, so a whole-number default (``min_replicas: 1.0``) is read as an integer.
    """
    if spec.type != "STRUCT" or not isinstance(spec.default, dict):
        return []
    specs = []
    for key, default in spec.default.items():
        kind = _kind_of(default)
        shown = int(default) if kind == "NUMBER_INTEGER" else default
        specs.append(ParameterSpec(f"{spec.name}.{key}", kind, shown, optional=True))
    return specs


def _struct_key(name: str, key: str, keys: Mapping[str, ParameterSpec]) -> ParameterSpec:
    if key not in keys:
        raise ParameterError(f"unknown key {key!r} of parameter {name!r}{_did_you_mean(key, keys)}; its keys are: "
                             f"{', '.join(keys)}")
    return keys[key]


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "NUMBER_INTEGER"
    kinds = {float: "NUMBER_DOUBLE", str: "STRING", list: "LIST", dict: "STRUCT"}
    return kinds.get(type(value), "")


def _did_you_mean(name: str, valid: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(spec: ParameterSpec, value: Any) -> Any:
    def bad() -> ParameterError:
        return ParameterError(f"parameter {spec.name!r} expects {_TYPE_WORDS.get(spec.type, spec.type)} "
                              f"({spec.type}), got {value!r}")

    kind = spec.type
    if kind == "STRING":
        if not isinstance(value, str):
            raise bad()
        return value
    if kind == "NUMBER_INTEGER":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise bad()
        try:
            return int(value)
        except ValueError:
            raise bad() from None
    if kind == "NUMBER_DOUBLE":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad()
        try:
            number = float(value)
        except ValueError:
            raise bad() from None
        if not math.isfinite(number):  # JSON has no NaN/Infinity: the server would reject the run
            raise bad()
        return number
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad()
    if kind in ("LIST", "STRUCT"):
        wanted = list if kind == "LIST" else dict
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise bad() from None
        if not isinstance(value, wanted):
            raise bad()
        return value
    return value  # a type this SDK version does not know: the server decides
