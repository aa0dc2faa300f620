"""Compose-file handling the checks need: variable interpolation as `docker compose` does it,
and the official Compose Specification schema (vendored by check-jsonschema)."""

from __future__ import annotations

import json
import re
from importlib import resources

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is missing, as `docker compose` reports it."""


def interpolate_string(text: str, env: dict[str, str]) -> str:
    """`$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`,
    `${VAR?err}`, `${VAR:+alt}`, `${VAR+alt}` (the Compose Specification's forms)."""

    def replace(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        set_nonempty = value not in (None, "")
        if op is None:
            return value or ""
        if op == ":-":
            return value if set_nonempty else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":?":
            if not set_nonempty:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value
        if op == "?":
            if value is None:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value
        if op == ":+":
            return arg if set_nonempty else ""
        if op == "+":
            return arg if value is not None else ""
        raise AssertionError(op)

    return _REFERENCE.sub(replace, text)


def interpolate(node, env: dict[str, str]):
    """The compose document with every string value interpolated (keys are left alone)."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, str):
        return interpolate_string(node, env)
    return node


def references(node) -> set[str]:
    """Names of the variables a document refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        for value in node.values():
            found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, str):
        for match in _REFERENCE.finditer(node):
            name = match.group("braced") or match.group("plain")
            if name:
                found.add(name)
    return found


def compose_spec_schema() -> dict:
    """The Compose Specification JSON schema, as vendored by check-jsonschema."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))


def environment(service: dict) -> dict[str, str]:
    """A service's `environment`, in either of its two forms, as a mapping."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {name: value for name, value in pairs}
    return {name: "" if value is None else str(value) for name, value in env.items()}


def duration_seconds(text: str) -> float:
    """A compose duration (`45s`, `1m30s`, `500ms`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)
