import subprocess
import sys
from argparse import Namespace

import pytest

from flows.cli import build_parser, main
from flows.cli.sdf import overrides_from_args, run_overrides
from inrcore.errors import ConfigError


COMMANDS = ("run", "fit", "mesh", "isopoints", "render", "nerf", "scene", "nerf-run", "skeleton", "generate", "deepsdf",
            "occnet", "space-run")


def test_help_lists_each_command_once_with_what_it_does_and_an_example(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("    ") and not line.startswith("     ")]
    assert listed == list(COMMANDS)  # each once, in order, and nowhere else at the start of a line
    for command in COMMANDS:
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [command])
        what = lines[at].split(None, 1)[1]
        assert len(what) > 20  # a line saying what it does, on the command's own line
        example = lines[at + 1].strip()
        assert example.startswith(f"e.g. inr {command} ")  # and an example under it, which parses
        assert build_parser().parse_args(example.split()[2:]).command == command
    assert "fit, mesh and measure a neural SDF for every shape of a dataset" in lines[lines.index("commands:") + 2]
    assert max(map(len, lines)) <= 80


def test_help_lists_every_run_option(capsys):
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


# ---- inr fit: one shape in this process ------------------------------------------------------

FIT_KEYS = {"chamfer_l1", "fscore", "normal_consistency", "hausdorff", "seconds", "steps", "method"}


@pytest.fixture(scope="module")
def sphere_xyz(tmp_path_factory):
    """8000 oriented points on the sphere of radius 0.5 about (1, 2, 3), as an .xyz file."""
    import numpy as np

    d = np.random.default_rng(0).normal(size=(8000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    path = tmp_path_factory.mktemp("cloud") / "sphere.xyz"
    np.savetxt(path, np.hstack([np.array([1.0, 2.0, 3.0]) + 0.5 * d, d]))
    return path


def small_fit_args(shape, out, method: str, width: int = 32) -> list:
    return ["fit", str(shape), "--method", method, "--out", str(out), "--steps", "200", "--resolution", "48",
            "--device", "cpu",
            "--set", "sampling.n_surface=4000", "--set", "sampling.n_near=4000", "--set", "sampling.n_uniform=2000",
            "--set", f"training.network.width={width}", "--set", "training.network.layers=2",
            "--set", "training.network.omega_first=10", "--set", "training.network.omega_hidden=10",
            "--set", "training.batch_surface=1024", "--set", "training.batch_offsurface=512",
            "--set", "training.batch_uniform=512", "--set", "training.lr=5e-4", "--set", "training.log_every=100",
            "--set", "metrics.n_points=5000"]


def check_fit_outputs(out, method: str, capsys) -> dict:
    import json
    import math

    import numpy as np
    import trimesh

    from inrcore.fields.weights import load_field

    assert sorted(p.name for p in out.iterdir()) == ["field.safetensors", "mesh.ply",
                                                      "mesh.png", "metrics.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert FIT_KEYS <= set(metrics) and metrics["method"] == method and metrics["steps"] == 200
    assert all(math.isfinite(metrics[k]) for k in FIT_KEYS - {"method"})
    assert metrics["input_kind"] == "points" and metrics["device"] == "cpu"
    # The mesh is in the input's coordinates: a sphere of radius 0.5 about (1, 2, 3).
    mesh = trimesh.load(out / "mesh.ply", process=False)
    radii = np.linalg.norm(np.asarray(mesh.vertices) - [1.0, 2.0, 3.0], axis=1)
    assert abs(np.median(radii) - 0.5) < 0.01
    _, _, metadata = load_field(out / "field.safetensors")
    assert metadata["method"] == method and metadata["config"]["training"]["network"]["kind"] == method
    assert metadata["normalisation"]["scale"] > 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["chamfer_l1"] == metrics["chamfer_l1"]
    return metrics


@pytest.mark.parametrize("method, width, chamfer", [("siren", 32, 0.02), ("igr", 32, 0.02), ("relu-pe", 48, 0.03)])
def test_fit_command_on_a_point_cloud(sphere_xyz, tmp_path, capsys, method, width, chamfer):
    out = tmp_path / "fit"
    assert main(small_fit_args(sphere_xyz, out, method, width)) == 0
    metrics = check_fit_outputs(out, method, capsys)
    assert metrics["chamfer_l1"] < chamfer and metrics["normal_consistency"] > 0.95


def test_fit_command_idf_on_a_point_cloud(sphere_xyz, tmp_path, capsys):
    # Needs training.network.kind "idf" (inrcore/idf.py, landing separately).
    out = tmp_path / "fit"
    assert main(small_fit_args(sphere_xyz, out, "idf")) == 0, capsys.readouterr().err
    metrics = check_fit_outputs(out, "idf", capsys)
    assert metrics["chamfer_l1"] < 0.05  # measured 0.038 with the IDF defaults


def test_fit_command_progress_lines_unless_quiet(sphere_xyz, tmp_path, capsys):
    args = small_fit_args(sphere_xyz, tmp_path / "a", "igr") + ["--steps", "20", "--set", "training.log_every=10"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "step     10/20" in err and "step     20/20" in err
    assert main(args[:5] + [str(tmp_path / "b")] + args[6:] + ["--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_fit_overrides_map_method_device_and_time_budget():
    from flows.cli.sdf import fit_overrides

    parse = build_parser().parse_args
    args = parse(["fit", "a.xyz", "--method", "relu-pe", "--out", "o", "--steps", "7", "--resolution", "40",
                  "--set", "training.lr=3e-3"])
    # The method's own settings (relu-pe: lr 1e-3 -> 1e-5) under the user's (--set lr wins).
    assert fit_overrides(args) == {"training": {"lr": 3e-3, "lr_final": 1e-5, "steps": 7, "device": "auto",
                                                "network": {"kind": "relu-pe"}}, "grid": {"resolution": 40}}
    # A time budget alone lifts the step cap; a step count given with --set still caps it.
    timed = fit_overrides(parse(["fit", "a.xyz", "--method", "igr", "--out", "o", "--seconds", "30", "--device", "cpu"]))
    assert timed["training"] == {"seconds": 30.0, "steps": 10**9, "device": "cpu", "network": {"kind": "igr"},
                                 "lr": 1e-3, "lr_final": 1e-5}
    capped = fit_overrides(parse(["fit", "a.xyz", "--method", "igr", "--out", "o", "--seconds", "30",
                                  "--set", "training.steps=5"]))
    assert capped["training"]["steps"] == 5
    with pytest.raises(SystemExit):
        parse(["fit", "a.xyz", "--method", "igr", "--out", "o", "--seconds", "30", "--steps", "5"])


def test_fit_command_bad_input_exits_2_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "nan.xyz"
    bad.write_text("\n".join(["0 0 0", "nan 1 2", "1 1 1"] * 50) + "\n")
    assert main(["fit", str(bad), "--method", "igr", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"inr: {bad}: 50 points have NaN or infinite coordinates"
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert main(["fit", str(tmp_path / "none.obj"), "--method", "siren", "--out", str(tmp_path / "o")]) == 2
    assert f"inr: {tmp_path / 'none.obj'}: file does not exist" in capsys.readouterr().err
    assert main(["fit", str(bad), "--method", "siren", "--out", str(tmp_path / "o"), "--set", "training.nope=1"]) == 2
    assert "unknown key(s) nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["fit", str(bad), "--method", "nerf", "--out", str(tmp_path / "o")])
    assert info.value.code == 2


def test_run_method_brings_its_settings_under_the_users():
    parse = build_parser().parse_args
    assert run_overrides(parse(["run", "m.yaml", "--method", "igr", "--steps", "9", "--set", "training.lr=3e-3"])) == {
        "training": {"network": {"kind": "igr"}, "lr": 3e-3, "lr_final": 1e-5, "steps": 9}}
    assert run_overrides(parse(["run", "m.yaml", "--steps", "9"])) == {"training": {"steps": 9}}
