"""How each command is listed in `inr --help`: one line saying what it does, an example under it."""

from __future__ import annotations

import argparse
from typing import Optional


def command_help(what: str, example: str) -> str:
    """The help of one subcommand: `what` on the command's line, then "e.g. <example>" under it
    (the top-level parser keeps the line break: `argparse.RawTextHelpFormatter`)."""
    return f"{what}\n  e.g. {example}"


def add_command(commands, name: str, what: str, example: str, description: str) -> argparse.ArgumentParser:
    """A subcommand `name` on the `inr` subcommand parser `commands`: listed as `what` with an
    example (`command_help`), and `description` at the top of its own --help."""
    return commands.add_parser(name, help=command_help(what, example), description=description)


def add_output_switches(parser: argparse.ArgumentParser, kept: Optional[str], pipeline: bool = False) -> None:
    """--quiet (no progress lines; `kept`: what is still printed, e.g. "the metrics") and, for a
    command running a Prefect pipeline, --verbose (Prefect's and MLflow's own log lines too)."""
    parser.add_argument("--quiet", action="store_true", help=f"no progress lines, only {kept}" if kept else None)
    if pipeline:
        parser.add_argument("--verbose", action="store_true",
                            help="show Prefect's and MLflow's own log lines" if kept else None)


class CommandListFormatter(argparse.RawTextHelpFormatter):
    """Help that keeps line breaks (each command's example on its own line) and puts every
    command's description in one column: argparse measures subcommand names one indent short,
    so a long name ("isopoints") would push its line down."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        choices = getattr(action, "choices", None)
        if action.help is not argparse.SUPPRESS and hasattr(action, "_get_subactions") and choices:
            longest = max(len(name) for name in choices)
            self._action_max_length = max(self._action_max_length,
                                          longest + self._current_indent + self._indent_increment)
