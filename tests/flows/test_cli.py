import subprocess
import sys
from argparse import Namespace

import pytest

from flows.cli import build_parser, main, overrides_from_args
from inrcore.errors import ConfigError


def test_help_lists_commands_and_every_run_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "run      fit, evaluate, mesh and measure" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for option in ("--out", "--store", "--tracking-uri", "--dask-address", "--workers", "--steps", "--seconds",
                   "--resolution", "--alias", "--set", "--quiet", "--verbose"):
        assert option in text


def test_the_installed_command_runs():
    out = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, check=True)
    assert "usage: inr" in out.stdout


def test_overrides_from_shortcuts_and_set():
    args = build_parser().parse_args(["run", "m.yaml", "--steps", "10", "--resolution", "64",
                                      "--set", "training.lr=1e-4", "--set", "sampling.near_sigmas=[0.02, 0.2]"])
    assert overrides_from_args(args) == {"training": {"steps": 10, "lr": 1e-4},
                                         "grid": {"resolution": 64}, "sampling": {"near_sigmas": [0.02, 0.2]}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        overrides_from_args(Namespace(set=["training.lr"], steps=None, seconds=None, resolution=None, alias=None))


def test_bad_manifest_exits_2_with_the_file_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nshapes: [a.obj]\nconfig: {training: {stepz: 1}}\n")
    assert main(["run", str(bad)]) == 2
    assert f"inr: {bad}: config.training: unknown key(s) stepz" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: manifest file does not exist" in capsys.readouterr().err
    assert main(["run", str(bad), "--set", "training.nope=1"]) == 2
