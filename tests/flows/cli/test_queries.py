"""`inr mesh`, `inr isopoints` and `inr render` on a weights file and on a real MLflow SQLite registry."""

import json

import numpy as np
import pytest
import torch
import trimesh

from flows.cli import main
from inrcore.fields.build import network_for
from inrcore.fields.networks import evaluate_field
from inrcore.fields.settings import NetworkConfig
from inrcore.fields.weights import save_field
from inrcore.geometry.pointclouds import load_point_cloud


@pytest.fixture(scope="module")
def sphere_file(tmp_path_factory):
    """A near-sphere (IGR geometric initialisation, radius 0.5) saved as a weights file."""
    spec, params = network_for(NetworkConfig(kind="igr", radius=0.5, width=32, layers=3), torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("model") / "field.safetensors"
    save_field(path, spec, params, {"shape_id": "sphere"})
    return {"path": str(path), "spec": spec, "params": params}


def test_mesh_dense_and_range_give_the_same_mesh_and_write_metrics(sphere_file, tmp_path, capsys):
    for method in ("dense", "range"):
        out = tmp_path / method / "mesh.ply"
        assert main(["mesh", sphere_file["path"], "--method", method, "--resolution", "33", "--out", str(out),
                     "--leaf", "4", "--no-fallback"]) == 0
        printed = json.loads(capsys.readouterr().out)
        metrics = json.loads((out.parent / "metrics.json").read_text())
        assert {"evaluations", "seconds", "vertices", "faces"} <= set(metrics)
        assert metrics["vertices"] == printed["vertices"] and metrics["faces"] > 0
    dense = json.loads((tmp_path / "dense" / "metrics.json").read_text())
    ranged = json.loads((tmp_path / "range" / "metrics.json").read_text())
    assert dense["evaluations"] == 33 ** 3
    assert ranged["method"] == "range" and ranged["fallback"] is False and "estimate" not in ranged
    assert ranged["point_evaluations"] < dense["evaluations"] and ranged["faces"] == dense["faces"]
    a, b = (trimesh.load(tmp_path / m / "mesh.ply", process=False) for m in ("dense", "range"))
    assert np.allclose(np.sort(a.vertices, axis=0), np.sort(b.vertices, axis=0), atol=1e-6)


def test_mesh_range_falls_back_to_dense_on_a_field_it_cannot_bound(tmp_path, capsys):
    # An untrained omega = 30 SIREN: no box is certified with 8 symbols, so the estimate picks the dense lattice.
    spec, params = network_for(NetworkConfig(kind="siren", width=32, layers=2), torch.Generator().manual_seed(0))
    save_field(tmp_path / "siren.safetensors", spec, params, {"shape_id": "noise"})
    out = tmp_path / "mesh.ply"
    assert main(["mesh", str(tmp_path / "siren.safetensors"), "--resolution", "33", "--leaf", "4", "--out", str(out)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == "dense" and metrics["fallback"] is True
    assert metrics["point_evaluations"] == 33 ** 3 and metrics["estimate"]["certified"] == [0.0, 0.0]
    assert metrics["evaluations"] == 33 ** 3 + metrics["estimate"]["sampled_boxes"] and metrics["faces"] > 0
    assert json.loads(capsys.readouterr().out)["faces"] == metrics["faces"]


def test_mesh_mise_gives_the_dense_mesh_of_its_final_lattice(sphere_file, tmp_path, capsys):
    # --method mise --resolution 32 --start 8: 32 cells per axis (33 points), 8 at first, two subdivisions.
    out = tmp_path / "mise" / "mesh.ply"
    assert main(["mesh", sphere_file["path"], "--method", "mise", "--resolution", "32", "--start", "8",
                 "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((out.parent / "metrics.json").read_text())
    assert {"method", "resolution", "evaluations", "point_evaluations", "box_evaluations", "seconds", "vertices",
            "faces", "dense_evaluations", "levels", "start", "mesh", "device", "ok"} <= set(metrics)
    assert metrics["method"] == "mise" and metrics["faces"] == printed["faces"] > 0
    assert metrics["dense_evaluations"] == 33 ** 3 and metrics["evaluations"] < 33 ** 3
    assert [level["resolution"] for level in metrics["levels"]] == [8, 16, 32]
    assert main(["mesh", sphere_file["path"], "--method", "dense", "--resolution", "33", "--out",
                 str(tmp_path / "dense.ply")]) == 0
    capsys.readouterr()
    mise, dense = (trimesh.load(path, process=False) for path in (out, tmp_path / "dense.ply"))
    assert len(mise.faces) == len(dense.faces) and mise.is_watertight
    assert np.allclose(np.sort(mise.vertices, axis=0), np.sort(dense.vertices, axis=0), atol=1e-5)
    # --resolution must be --start times a power of two.
    assert main(["mesh", sphere_file["path"], "--method", "mise", "--resolution", "33", "--start", "8",
                 "--out", str(out)]) == 2
    assert "must be --start (8) times a power of two" in capsys.readouterr().err


def test_isopoints_are_on_the_surface_and_readable(sphere_file, tmp_path, capsys):
    out = tmp_path / "points.ply"
    assert main(["isopoints", sphere_file["path"], "--n", "400", "--out", str(out)]) == 0
    record = json.loads(capsys.readouterr().out)
    points, normals = load_point_cloud(out)
    assert record["count"] == len(points) and 300 <= len(points) <= 400
    values = evaluate_field(sphere_file["spec"], sphere_file["params"], torch.as_tensor(points, dtype=torch.float32))
    assert values.abs().max().item() < 1e-3
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-4)


def test_render_writes_depth_and_normals_side_by_side(sphere_file, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "image.png"
    assert main(["render", sphere_file["path"], "--out", str(out), "--size", "48"]) == 0
    record = json.loads(capsys.readouterr().out)
    image = np.asarray(Image.open(out))
    assert image.shape[0] == 48 and image.shape[1] > 2 * 48 and record["hits"] > 0 and record["steps"] > 0
    assert main(["render", sphere_file["path"], "--out", str(out), "--size", "32", "--image", "normals",
                 "--method", "sphere"]) == 0
    assert np.asarray(Image.open(out)).shape == (32, 32, 3)


def test_mesh_says_its_stages_on_standard_error_unless_quiet(sphere_file, tmp_path, capsys):
    out = tmp_path / "mesh.ply"
    assert main(["mesh", sphere_file["path"], "--method", "dense", "--resolution", "9", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    lines, vertices = printed.err.splitlines(), json.loads(printed.out)["vertices"]
    assert [line.split()[2] for line in lines] == ["loading", "meshing", "marching", "writing", str(vertices)]
    assert lines[0] == f"inr mesh: loading {sphere_file['path']}" and lines[-1].endswith(f"-> {out}")
    assert main(["mesh", sphere_file["path"], "--method", "dense", "--resolution", "9", "--out", str(out),
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_bad_model_and_arguments_exit_2_with_a_message(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    missing = tmp_path / "nothing.safetensors"
    assert main(["mesh", str(missing), "--out", str(tmp_path / "m.ply")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert main(["mesh", "models:/x@champion", "--out", str(tmp_path / "m.ply")]) == 2
    assert "needs --tracking-uri" in capsys.readouterr().err
    assert main(["isopoints", str(missing), "--n", "10", "--out", str(tmp_path / "p.xyz")]) == 2
    assert "must end in .ply" in capsys.readouterr().err


def test_a_registered_model_meshes_by_its_registry_uri(tmp_path, capsys):
    from tasks import registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = registry.ensure_experiment(uri, "inrflow-query", (tmp_path / "artifacts").as_uri())
    spec, params = network_for(NetworkConfig(kind="igr", radius=0.5, width=32, layers=3), torch.Generator().manual_seed(0))
    run_id = registry.start_run(uri, experiment, "sphere", {}, {})
    model_uri, _ = registry.register_field(uri, run_id, "query-sphere", "champion", spec, params, {}, fingerprint="fp")
    registry.end_run(uri, run_id)
    out = tmp_path / "mesh.ply"
    assert main(["mesh", model_uri, "--tracking-uri", uri, "--resolution", "25", "--out", str(out)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["faces"] > 0 and trimesh.load(out, process=False).is_watertight
    assert main(["mesh", "models:/query-sphere@nope", "--tracking-uri", uri, "--out", str(out)]) == 2
    assert "models:/query-sphere@nope" in capsys.readouterr().err
