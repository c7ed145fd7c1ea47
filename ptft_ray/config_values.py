"""How a value written in YAML or `--set` becomes a typed one: the coercion every config key
goes through (naming the key where it fails), and `section.key=value` overrides. Plain Python:
config.py builds and checks the Config from these; pipeline.py reads its own section with them."""
from __future__ import annotations

import typing

import yaml

from .errors import PtftError


def fail(key: str, msg: str) -> typing.NoReturn:
    raise PtftError(f"config key '{key}': {msg}")


def coerce(key: str, value, tp):
    """Return value as type tp, accepting the forms YAML and `--set` produce."""
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict):
            fail(key, f"expected a mapping, got {value!r}")
        ktp, vtp = typing.get_args(tp)
        return {coerce(key, k, ktp): coerce(f"{key}.{k}", v, vtp) for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):  # --set sweep.strategies=full,lora
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            fail(key, f"expected a list, got {value!r}")
        return [coerce(key, v, item_tp) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        fail(key, f"expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            fail(key, f"expected a number, got {value!r}")
        if isinstance(value, str):  # YAML reads 3e-4 as a string
            try:
                value = float(value) if tp is float else int(value)
            except ValueError:
                fail(key, f"expected {tp.__name__}, got {value!r}")
        if tp is int and isinstance(value, float):
            if not value.is_integer():
                fail(key, f"expected an integer, got {value!r}")
            value = int(value)
        if not isinstance(value, (int, float)):
            fail(key, f"expected {tp.__name__}, got {value!r}")
        return tp(value)
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, bool):  # YAML reads `true` as a boolean: the choice keys name it "true"
            return "true" if value else "false"
        if not isinstance(value, str):
            fail(key, f"expected a string, got {value!r}")
        return value
    raise AssertionError(f"unsupported config type {tp}")


def parse_sets(overrides: list[str]) -> dict:
    """`section.key=value` strings -> {"section.key": value}, each value parsed as YAML."""
    out: dict = {}
    for k, v in apply_overrides({}, overrides).items():
        out.update({f"{k}.{name}": value for name, value in v.items()})
    return out


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """`section.key=value` strings onto a nested dict; the value is parsed as YAML."""
    d = {k: dict(v or {}) for k, v in d.items()}
    for item in overrides or []:
        if "=" not in item:
            raise PtftError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or not all(parts):
            raise PtftError(f"--set {item!r}: expected section.key=value (e.g. optim.lr=3e-4)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        d.setdefault(parts[0], {})[parts[1]] = value
    return d
