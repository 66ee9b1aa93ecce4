"""One shape from file to metrics: meshes and oriented point clouds, with small real fits.

The shapes are spheres of radius 0.5 centred at (1, 2, 3): normalised with extent 0.9 they
become spheres of radius 0.9 about the origin (the bbox's longest side, the diameter 1, maps
onto [-0.9, 0.9]), so the fitted field must be negative at the origin and positive in the corners.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from inrcore.errors import ShapeError
from inrcore.fields.build import network_for
from inrcore.fields.evaluation import evaluate_points
from inrcore.geometry.settings import GridConfig, SamplingConfig
from inrcore.sdf.fitshape import (
    EmptySurfaceError,
    field_surface,
    fit_shape,
    input_kind_of,
    load_reference,
    load_shape_input,
)
from inrcore.sdf.settings import PipelineConfig
from inrcore.settings import config_replace


CENTRE = np.array([1.0, 2.0, 3.0])
RADIUS = 0.5


def sphere_cloud(n: int, seed: int = 0):
    """Points [n, 3] on the sphere (CENTRE, RADIUS) and their outward unit normals [n, 3]."""
    d = np.random.default_rng(seed).normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return CENTRE + RADIUS * d, d


def small_config(kind: str) -> PipelineConfig:
    return config_replace(PipelineConfig(), {
        "sampling": {"n_surface": 4000, "n_near": 4000, "n_uniform": 2000},
        "training": {"steps": 200, "batch_surface": 1024, "batch_offsurface": 512, "batch_uniform": 512,
                     "lr": 5e-4, "log_every": 100, "device": "cpu",
                     # omega 10 rather than SIREN's 30: at 200 steps of a 32-wide net, 30 leaves
                     # stray sheets across the cube (measured: chamfer 0.068 against 0.013).
                     "network": {"kind": kind, "width": 32, "layers": 2, "omega_first": 10.0, "omega_hidden": 10.0}},
        "grid": {"resolution": 48, "chunk": 32},
        "metrics": {"n_points": 5000},
    })


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    points, normals = sphere_cloud(8000)
    np.savetxt(folder / "sphere.xyz", np.hstack([points, normals]))
    np.savez(folder / "bare.npz", points=sphere_cloud(4000, seed=1)[0])
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    mesh.apply_translation(CENTRE)
    mesh.export(folder / "sphere.ply")  # a .ply with faces: a mesh
    trimesh.PointCloud(points).export(folder / "cloud.ply")  # a .ply without faces: a cloud
    return folder


def test_input_kinds_by_suffix_and_ply_header(files, tmp_path):
    assert input_kind_of(files / "sphere.xyz") == "points"
    assert input_kind_of(files / "bare.npz") == "points"
    assert input_kind_of(files / "sphere.ply") == "mesh"
    assert input_kind_of(files / "cloud.ply") == "points"
    assert input_kind_of(tmp_path / "absent.obj") == "mesh"  # load_mesh says it is missing
    with pytest.raises(ShapeError, match=r"notes.txt: unsupported format '.txt'; expected a mesh"):
        input_kind_of(tmp_path / "notes.txt")


def test_cloud_input_is_normalised_and_sampled(files):
    shape = load_shape_input(files / "sphere.xyz", SamplingConfig(n_surface=3000, n_near=2000, n_uniform=1000))
    assert shape.kind == "points" and not shape.reference.normals_estimated
    # bbox centre ~ CENTRE, scale = 2 * 0.9 / (bbox side ~ 1.0)
    np.testing.assert_allclose(shape.normalisation.center, CENTRE, atol=0.01)
    assert shape.normalisation.scale == pytest.approx(1.8, rel=0.01)
    assert np.abs(shape.reference.points).max() == pytest.approx(0.9)
    points, normals = sphere_cloud(8000)
    np.testing.assert_allclose(shape.reference.points, (points - shape.normalisation.center) * shape.normalisation.scale,
                               atol=1e-9)
    np.testing.assert_allclose(shape.reference.normals, normals, atol=1e-9)
    samples = shape.samples
    assert samples.points.shape == (6000, 3) and samples.n_surface == 3000
    np.testing.assert_allclose(np.linalg.norm(samples.points[:3000], axis=1), 0.9, rtol=0.002)
    assert np.all(samples.sdf[:3000] == 0) and np.isnan(samples.sdf[3000:]).all()


def test_mesh_input_and_reference_with_a_stored_normalisation(files):
    shape = load_shape_input(files / "sphere.ply", SamplingConfig(n_surface=1000, n_near=500, n_uniform=500))
    assert shape.kind == "mesh" and np.isfinite(shape.samples.sdf).all()
    again = load_reference(files / "sphere.ply", shape.normalisation)
    np.testing.assert_allclose(again.mesh.vertices, shape.reference.mesh.vertices)
    assert again.size() == {"vertices": 2562, "faces": 5120}


def test_nan_cloud_names_the_file(tmp_path):
    bad = tmp_path / "nan.xyz"
    points, normals = sphere_cloud(200)
    points[7, 1] = np.nan
    np.savetxt(bad, np.hstack([points, normals]))
    with pytest.raises(ShapeError, match=f"{bad}: 1 points have NaN"):
        load_shape_input(bad, SamplingConfig())


def _check_fit(result, kind: str) -> None:
    assert result.input_kind == kind
    assert set(result.metrics) == {"chamfer_l1", "fscore", "precision", "recall", "normal_consistency", "hausdorff",
                                   "chamfer_l1_points", "fscore_points", "precision_points", "recall_points",
                                   "normal_consistency_points", "hausdorff_points"}
    assert set(result.seconds) == {"prepare", "train", "extract", "metrics"}
    assert result.fit.steps == 200
    # Inside negative, outside positive (normalised coordinates: the sphere has radius 0.9).
    probes = np.array([[0, 0, 0], [0.5, 0, 0], [0.95, 0.95, 0.95], [-0.95, 0.9, -0.9]], dtype=np.float32)
    values = evaluate_points(result.fit.spec, result.fit.params, probes)
    assert (values[:2] < 0).all() and (values[2:] > 0).all()
    radii = np.linalg.norm(result.mesh.vertices, axis=1)
    assert abs(np.median(radii) - 0.9) < 0.02


def test_fit_a_cloud_with_normals(files):
    result = fit_shape(files / "sphere.xyz", small_config("igr"))
    _check_fit(result, "points")
    assert result.metrics["chamfer_l1"] < 0.02 and result.metrics["normal_consistency"] > 0.95


def test_fit_a_cloud_without_normals(files):
    result = fit_shape(files / "bare.npz", small_config("igr"))
    assert result.reference.normals_estimated
    _check_fit(result, "points")
    assert result.metrics["chamfer_l1"] < 0.02 and result.metrics["normal_consistency"] > 0.95


def test_fit_a_mesh(files):
    logged = []
    result = fit_shape(files / "sphere.ply", small_config("siren"), on_log=logged.append)
    _check_fit(result, "mesh")
    assert [entry["step"] for entry in logged] == [100, 200]
    assert result.metrics["chamfer_l1"] < 0.02 and result.metrics["fscore"] > 0.5


def test_a_field_without_a_zero_level_set_is_an_error():
    config = small_config("igr").training.network
    import torch

    spec, params = network_for(config, torch.Generator().manual_seed(0))  # ~ |x| - 0.5
    grid = GridConfig(resolution=8, chunk=8, bound=0.1)  # all inside the sphere: negative
    with pytest.raises(EmptySurfaceError, match=r"my.xyz: the fitted field has no zero level set .* to -0\.\d+"):
        field_surface(spec, params, grid, where="my.xyz")
    assert len(field_surface(spec, params, GridConfig(resolution=16, chunk=8)).faces) > 0


def _sphere_shape_fit() -> "ShapeFit":
    """An untrained IGR network (geometric initialisation: about |x| - 0.5) and its surface, with
    hand-set metrics: enough for `save_shape_fit`, without training."""
    import torch

    from inrcore.geometry.meshes import Normalisation
    from inrcore.sdf.fitshape import ShapeFit
    from inrcore.sdf.training import FitResult

    spec, params = network_for(small_config("igr").training.network, torch.Generator().manual_seed(0))
    fit = FitResult(spec=spec, params=params, steps=3, seconds=1.5, device="cpu",
                    history=[{"step": 3, "seconds": 1.5, "loss": 0.25, "lr": 1e-3}])
    metrics = {"chamfer_l1": 0.01, "fscore": 0.9, "normal_consistency": 0.95, "hausdorff": 0.05,
               "precision": 0.8, "recall": 1.0}
    return ShapeFit(fit=fit, mesh=field_surface(spec, params, GridConfig(resolution=16, chunk=8)), metrics=metrics,
                    normalisation=Normalisation(center=(1.0, 2.0, 3.0), scale=2.0), input_kind="mesh",
                    seconds={"prepare": 0.5, "train": 1.5}, path="sphere.ply")


def test_save_shape_fit_writes_the_metrics_before_the_picture(tmp_path, monkeypatch):
    import json

    import inrcore.sdf.fitshape as fitshape

    shape_fit, config = _sphere_shape_fit(), small_config("igr")

    def killed(image, path):
        raise KeyboardInterrupt("killed while drawing the picture")

    monkeypatch.setattr(fitshape, "write_png", killed)
    with pytest.raises(KeyboardInterrupt):
        fitshape.save_shape_fit(shape_fit, tmp_path / "killed", config)
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["field.safetensors", "mesh.ply", "metrics.json"]
    record = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert (record["chamfer_l1"], record["steps"], record["seconds"], record["loss"]) == (0.01, 3, 2.0, 0.25)

    monkeypatch.undo()
    paths = fitshape.save_shape_fit(shape_fit, tmp_path / "whole", config)
    assert all(path.is_file() for path in paths.values())
