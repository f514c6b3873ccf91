"""Run configurations: YAML files mapped onto (nested) dataclasses, with ``key.sub=value`` CLI overrides."""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, Iterable, TypeVar

import yaml

from data_tools.errors import DataError

T = TypeVar("T")


def _convert(value: Any, annotation: Any, where: str, source: str | None):
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise DataError(source, f"'{where}' must be a mapping, got {type(value).__name__}")
        return from_dict(annotation, value, source, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if value is None else _convert(value, args[0], where, source) if len(args) == 1 else value
    if annotation in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if annotation is int and float(value) != int(value):
            raise DataError(source, f"'{where}' must be an integer, got {value!r}")
        return annotation(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation in (int, float):
        kind = "an integer" if annotation is int else "a number"
        raise DataError(source, f"'{where}' must be {kind}, got {value!r}")
    if annotation is bool and not isinstance(value, bool):
        raise DataError(source, f"'{where}' must be true or false, got {value!r}")
    if annotation is str and not isinstance(value, str):
        raise DataError(source, f"'{where}' must be a string, got {value!r}")
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        inner = args[0] if args else Any
        items = [_convert(v, inner, f"{where}[{i}]", source) if inner is not Any and inner is not Ellipsis else v
                 for i, v in enumerate(value)]
        return origin(items)
    if origin in (list, tuple):
        raise DataError(source, f"'{where}' must be a list, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, source: str | None = None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, wrong types and values outside the class's ``RANGES``
    (``{field: (low, high)}``, either bound None; list items are checked one by one) raise DataError naming
    ``source``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise DataError(source, f"unknown config key(s) {[prefix + k for k in unknown]}; "
                                f"valid keys: {sorted(prefix + k for k in fields)}")
    kwargs = {k: _convert(v, hints[k], prefix + k, source) for k, v in data.items()}
    for key, (low, high) in getattr(cls, "RANGES", {}).items():
        value = kwargs.get(key, getattr(fields[key], "default", None))
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and \
                    not ((low is None or v >= low) and (high is None or v <= high)):
                bound = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
                raise DataError(source, f"'{prefix}{key}' must be {bound}, got {value!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DataError(source, f"config is incomplete or invalid: {exc}") from None
    except DataError as exc:  # a dataclass's own __post_init__ check: name the config file
        if exc.path is not None:
            raise
        raise DataError(source, exc.problem) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> (["a", "b"], 3); the value is parsed as YAML (numbers, booleans, lists...)."""
    if "=" not in text:
        raise DataError(None, f"override {text!r} must look like key=value (nested keys with dots)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def read_yaml_mapping(path: str | os.PathLike, what: str = "YAML file") -> dict:
    """The mapping a YAML file holds (an empty file: {}); a missing, unreadable or non-mapping file is a
    ``DataError`` naming it."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise DataError(source, f"{what} does not exist")
    with open(source, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise DataError(source, f"invalid YAML{where}: {problem}") from None
        except UnicodeDecodeError as exc:
            raise DataError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, dict):
        raise DataError(source, f"{what} must be a YAML mapping at the top level")
    return data


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> T:
    """Load YAML ``path`` (optional) into dataclass ``cls``, then apply ``key.sub=value`` overrides."""
    data: dict = {}
    source = None
    if path is not None:
        source = os.fspath(path)
        data = read_yaml_mapping(source, "config file")
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise DataError(source, f"override {text!r}: '{key}' is not a mapping")
        node[keys[-1]] = value
    return from_dict(cls, data, source)


def to_dict(config) -> dict:
    """Dataclass -> plain dict (for manifests and checkpoint metadata)."""
    return dataclasses.asdict(config)


def save_config(config, path: str | os.PathLike) -> None:
    """Write a dataclass config as YAML atomically."""
    from data_tools.io.atomic import write_text

    write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
