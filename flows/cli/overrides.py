"""The command line's one reader of settings overrides: --set KEY=VALUE options (dotted KEY,
VALUE read as YAML) into the nested dict that `inrcore.settings.config_replace` lays over a config."""

from __future__ import annotations

from typing import Sequence

import yaml


def overrides_from_set(items: Sequence[str]) -> dict:
    """Nested overrides from --set KEY=VALUE options (dotted KEY, VALUE read as YAML)."""
    from inrcore.errors import ConfigError

    overrides: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.steps=500")
        key, value = item.split("=", 1)
        put_override(overrides, key.strip(), _parse_value(value))
    return overrides


def put_override(overrides: dict, dotted: str, value) -> None:
    """Set overrides[a][b][c] = value for dotted "a.b.c", making sections as needed."""
    from inrcore.errors import ConfigError

    node = overrides
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a section")
    node[leaf] = value


def _parse_value(text: str):
    """A --set value read as YAML, except that '1e-4' (which YAML 1.1 keeps as text) is a number."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
