"""The `inr` command line: one module per command group, each adding its subcommands to the
parser and running them (`sdf`: run, fit; `queries`: mesh, isopoints, render; `nerf`: nerf,
scene, nerf-run; `skeleton`: skeleton; `shapespace`: generate, deepsdf, occnet, space-run), over the shared `overrides` (--set) and `prefect_env` (offline Prefect).

Heavy imports (Prefect, torch, MLflow) happen inside the commands, after the embedded
defaults for offline runs are in the environment.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from .helptext import CommandListFormatter
from .nerf import NERF_COMMANDS, add_nerf_commands, nerf_command
from .queries import QUERY_COMMANDS, add_query_commands, query_command
from .sdf import SDF_COMMANDS, add_sdf_commands, sdf_command
from .shapespace import SHAPESPACE_COMMANDS, add_shapespace_commands, shapespace_command
from .skeleton import SKELETON_COMMANDS, add_skeleton_commands, skeleton_command


DESCRIPTION = """\
inrflow: implicit neural representations of 3D shapes, run as pipelines over
shape collections. `inr COMMAND --help` gives a command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inr", description=DESCRIPTION, formatter_class=CommandListFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    commands.required = True
    add_sdf_commands(commands)
    add_query_commands(commands)
    add_nerf_commands(commands)
    add_skeleton_commands(commands)
    add_shapespace_commands(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in SDF_COMMANDS:
        return sdf_command(args)
    if args.command in QUERY_COMMANDS:
        return query_command(args)
    if args.command in NERF_COMMANDS:
        return nerf_command(args)
    if args.command in SKELETON_COMMANDS:
        return skeleton_command(args)
    if args.command in SHAPESPACE_COMMANDS:
        return shapespace_command(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
