"""Command-line options made from settings classes: one source for a setting's type, choices and default.

`add_setting_options` gives a command `--<name>` options for chosen fields of a settings class
(`inrcore.settings`): the type, the choices of a `Literal`, `--x/--no-x` for a flag and the
default all come from the class, and "(default ...)" is added to the help. `settings_from_options`
builds the settings object back from the parsed options, validated by the class itself, with
errors naming the option (`--leaf: must be positive, got 0`).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from typing import Any, Callable, Mapping, Optional


# An integer option standing for a setting's null (e.g. --max-symbols -1: keep all).
NULL_AS = -1


def add_setting_options(parser: argparse.ArgumentParser, cls: type, helps: Mapping[str, str],
                        metavars: Optional[Mapping[str, str]] = None, flags: Optional[Mapping[str, str]] = None,
                        nullable_as: Optional[int] = NULL_AS) -> None:
    """Add `--<field>` for each field named in `helps` ({field: help text}) of settings class `cls`
    (`metavars`: {field: METAVAR} where not the field's name in capitals; `flags`: {field: option}
    where the option is not named after the field). The parsed value's name is the field's.

    An optional integer setting takes `nullable_as` on the command line for its null.
    """
    defaults, kinds = _defaults(cls), _kinds(cls)
    for name, text in helps.items():
        flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
        kind, choices, nullable = kinds[name]
        default = defaults[name]
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{text} (default: {flag if default else '--no-' + flag[2:]})")
            continue
        if nullable and default is None:
            default = nullable_as
        metavar = None if choices else (metavars or {}).get(name, name.upper())
        parser.add_argument(flag, dest=name, type=kind, choices=choices, default=default, metavar=metavar,
                            help=f"{text} (default {default})")


def settings_from_options(cls: type, args: argparse.Namespace, names, nullable_as: Optional[int] = NULL_AS,
                          **fixed: Any):
    """The settings `cls` from the parsed options `names` (and `fixed` values), validated by the class;
    a bad value raises ValueError naming the option."""
    from inrcore.errors import ConfigError
    from inrcore.settings import config_from_dict

    kinds = _kinds(cls)
    values = {}
    for name in names:
        value = getattr(args, name)
        values[name] = None if kinds[name][2] and value == nullable_as else value
    try:
        return config_from_dict(cls, {**values, **fixed}, "options")
    except ConfigError as exc:
        raise ValueError(re.sub(r"^options\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(exc))) from None


def one_shape_settings(build: Callable[[], Any], device_of: Callable[[Any], str], args: argparse.Namespace):
    """The settings of a command that works on one shape here (`inr fit`, `inr skeleton`): built by
    `build` (which may raise ConfigError), with the device they name available and the --out folder
    created. Returns (settings, 0), or (None, 2) after saying what is wrong on standard error."""
    import sys
    from pathlib import Path

    from inrcore.device import resolve_device
    from inrcore.errors import ConfigError

    try:
        settings = build()
        resolve_device(device_of(settings))
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return None, 2
    except RuntimeError as exc:  # CUDA asked for but absent
        print(f"inr: --device {args.device}: {exc}", file=sys.stderr)
        return None, 2
    except OSError as exc:
        print(f"inr: {args.out}: cannot create the output folder: {exc.strerror or exc}", file=sys.stderr)
        return None, 2
    return settings, 0


def _defaults(cls: type) -> dict:
    instance = cls()
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(cls)}


def _kinds(cls: type) -> dict[str, tuple[type, Optional[tuple], bool]]:
    """Per field: (the Python type an option parses to, the choices of a Literal or None, whether null is allowed)."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        nullable = False
        args = typing.get_args(hint)
        if typing.get_origin(hint) is typing.Union:
            nullable = type(None) in args
            hint = next(a for a in args if a is not type(None))
        if typing.get_origin(hint) is typing.Literal:
            out[name] = (type(typing.get_args(hint)[0]), typing.get_args(hint), nullable)
        else:
            out[name] = (hint if hint in (bool, int, float, str) else str, None, nullable)
    return out
