"""Command-line options made from settings classes (flows/cli/options.py)."""

import argparse

import pytest

from flows.cli.options import add_setting_options, settings_from_options
from inrcore.queries.settings import RangeMeshConfig


def parser_for(**metavars):
    parser = argparse.ArgumentParser(prog="t")
    add_setting_options(parser, RangeMeshConfig, {"resolution": "points", "mode": "arithmetic",
                                                  "max_symbols": "symbols", "fallback": "fall back"},
                        metavars=metavars or None)
    return parser


def test_types_choices_and_defaults_come_from_the_settings_class():
    parser = parser_for(resolution="R")
    args = parser.parse_args([])
    # RangeMeshConfig(): resolution 256, mode affine, max_symbols 8, fallback True
    assert (args.resolution, args.mode, args.max_symbols, args.fallback) == (256, "affine", 8, True)
    args = parser.parse_args(["--resolution", "33", "--mode", "interval", "--max-symbols", "-1", "--no-fallback"])
    assert (args.resolution, args.mode, args.max_symbols, args.fallback) == (33, "interval", -1, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "exact"])  # not a choice of the Literal
    text = parser.format_help()
    assert "--resolution R" in text and "points (default 256)" in text and "(default: --fallback)" in text


def test_settings_come_back_validated_with_the_option_named():
    parser = parser_for()
    settings = settings_from_options(RangeMeshConfig, parser.parse_args(["--max-symbols", "-1"]),
                                     ("resolution", "mode", "max_symbols", "fallback"), bound=2.0)
    assert settings == RangeMeshConfig(max_symbols=None, bound=2.0)  # -1 stands for null: keep all symbols
    with pytest.raises(ValueError, match=r"^--resolution: must be at least 2, got 1$"):
        settings_from_options(RangeMeshConfig, parser.parse_args(["--resolution", "1"]), ("resolution",))
    with pytest.raises(ValueError, match=r"^--max-symbols: must be zero or more, got -2$"):
        settings_from_options(RangeMeshConfig, parser.parse_args(["--max-symbols", "-2"]), ("max_symbols",))
