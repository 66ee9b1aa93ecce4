"""`inr skeleton`: one shape's skeleton files from the command line, its options and its errors."""

import json

import numpy as np
import pytest

from flows.cli import build_parser, main
from flows.cli.skeleton import skeleton_overrides
from inrcore.geometry.pointclouds import write_point_cloud_ply
from inrcore.skeleton.analytic import capsule
from inrcore.skeleton.skeletonfiles import read_ma, read_skeleton_ply


def parsed(*args):
    return build_parser().parse_args(["skeleton", "in.obj", "--out", "x", *args])


def test_options_come_from_the_settings_and_set_goes_over_them():
    defaults = skeleton_overrides(parsed())
    assert defaults == {"method": "neural", "device": "auto", "field": {"steps": 800}, "cover": {"delta": 0.03,
                        "time_limit": 30.0}, "trace": {"n_surface": 2000}}
    chosen = skeleton_overrides(parsed("--method", "coverage-axis", "--delta", "0.05", "--seconds", "20",
                                       "--set", "cover.delta=0.02", "--set", "candidates.n_box=1000"))
    assert chosen["method"] == "coverage-axis" and chosen["field"] == {"steps": 800, "seconds": 20.0}
    assert chosen["cover"]["delta"] == 0.02 and chosen["candidates"] == {"n_box": 1000}


@pytest.fixture(scope="module")
def capsule_mesh(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "capsule.obj"
    capsule(0.35, 0.5).mesh(32).apply_translation([10.0, 0.0, 0.0]).export(path)
    return path


def test_coverage_axis_on_a_mesh_writes_the_files_in_its_coordinates(capsule_mesh, tmp_path, capsys):
    out = tmp_path / "skel"
    code = main(["skeleton", str(capsule_mesh), "--method", "coverage-axis", "--out", str(out), "--quiet",
                 "--n-surface", "800", "--set", "n_input=6000", "--set", "candidates.n_box=20000"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["balls.ply", "metrics.json", "skeleton.ma", "skeleton.ply",
                                                     "skeleton.png"]
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert printed == metrics and metrics["method"] == "coverage-axis" and metrics["input_kind"] == "mesh"
    assert metrics["cover"]["method"] == "milp" and metrics["uncovered"] == 0 and metrics["surface_samples"] == 800
    points, radii, edges, faces = read_skeleton_ply(out / "skeleton.ply")
    assert len(points) == metrics["balls"] and len(faces) == metrics["faces"]
    ma = read_ma(out / "skeleton.ma")
    assert np.allclose(ma[0], points, atol=1e-6) and np.array_equal(ma[2], edges)
    # The capsule was moved to x = 10: the skeleton is there, its balls inside the capsule.
    offset = points - [10.0, 0.0, 0.0]
    axis = np.linalg.norm(offset - np.column_stack([0 * offset[:, :2], np.clip(offset[:, 2], -0.5, 0.5)]), axis=1)
    assert np.all(axis + radii < 0.35 + 0.03)
    import trimesh

    balls = trimesh.load(out / "balls.ply", process=False)
    assert balls.is_watertight and balls.bounds[0][0] > 9.5


def test_neural_on_an_oriented_point_cloud_shows_progress(capsule_mesh, tmp_path, capsys):
    import trimesh

    points, faces = trimesh.sample.sample_surface(trimesh.load(capsule_mesh), 6000, seed=0)
    normals = trimesh.load(capsule_mesh).face_normals[faces]
    cloud = write_point_cloud_ply(tmp_path / "cloud.ply", points, normals)
    out = tmp_path / "skel"
    code = main(["skeleton", str(cloud), "--out", str(out), "--steps", "40", "--n-surface", "300",
                 "--set", "field.batch_box=256", "--set", "field.batch_surface=256", "--set", "field.start_steps=50",
                 "--set", "field.log_every=20"])
    assert code == 0
    err = capsys.readouterr().err
    assert "inr skeleton: field step    20/40" in err and "inr skeleton: field step    40/40" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "neural" and metrics["input_kind"] == "points" and metrics["field_steps"] == 40
    assert metrics["balls"] >= 1 and set(metrics["seconds"]) == {"input", "field", "candidates", "selection",
                                                                  "linking"}


def test_bad_input_exits_2_naming_the_file(tmp_path, capsys):
    empty = tmp_path / "empty.obj"
    empty.write_bytes(b"")
    assert main(["skeleton", str(empty), "--method", "coverage-axis", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"inr: {empty}: file is empty")
    assert main(["skeleton", str(empty), "--out", str(tmp_path / "o"), "--delta", "0"]) == 2
    assert "inr: settings.cover.delta: must be positive, got 0" in capsys.readouterr().err
