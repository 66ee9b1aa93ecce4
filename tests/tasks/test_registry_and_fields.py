"""The registry adapter and the grid-evaluation task, on a real MLflow SQLite registry and a real Zarr store."""

import time

import numpy as np
import pytest
import torch

from inrcore.fields.evaluation import evaluate_points
from inrcore.fields.networks import init_siren_params, siren_spec
from inrcore.fields.settings import NetworkConfig
from inrcore.geometry.grids import block_points
from inrcore.geometry.settings import GridConfig
from tasks import registry
from tasks.sdf.evaluate import evaluate_field
from tasks.store import open_store


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A random SIREN registered as models:/unit-ball@champion in a fresh SQLite registry."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment = registry.ensure_experiment(uri, "inrflow-unit", (root / "artifacts").as_uri())
    assert registry.ensure_experiment(uri, "inrflow-unit") == experiment  # idempotent
    spec = siren_spec(width=16, layers=1)
    params = init_siren_params(spec, torch.Generator().manual_seed(0))
    run_id = registry.start_run(uri, experiment, "ball", {"training": {"steps": 1}}, {"inrflow.shape_id": "ball"})
    model_uri, version = registry.register_field(uri, run_id, "unit-ball", "champion", spec, params,
                                                 {"shape_id": "ball"}, fingerprint="fp1")
    registry.end_run(uri, run_id)
    return {"uri": uri, "root": root, "spec": spec, "params": params, "model_uri": model_uri,
            "version": version, "run_id": run_id}


def test_register_find_and_load_back(registered):
    uri = registered["uri"]
    assert registered["model_uri"] == "models:/unit-ball@champion"
    found = registry.find_model_version(uri, "unit-ball", "fp1")
    assert found.version == registered["version"] and found.run_id == registered["run_id"]
    assert registry.find_model_version(uri, "unit-ball", "other") is None
    assert registry.find_model_version(uri, "no-such-model", "fp1") is None
    spec, params, meta, run_id = registry.load_registered_field(uri, registered["model_uri"])
    assert spec == registered["spec"] and run_id == registered["run_id"] and meta == {"shape_id": "ball"}
    assert all(torch.equal(params[k], registered["params"][k]) for k in params)


def test_pyfunc_flavour_predicts_the_field_without_pickle(registered):
    import mlflow

    mlflow.set_tracking_uri(registered["uri"])
    model = mlflow.pyfunc.load_model(registered["model_uri"])
    points = np.array([[0.0, 0.0, 0.0], [0.5, -0.25, 0.1]], np.float32)
    expected = evaluate_points(registered["spec"], registered["params"], points)
    assert np.allclose(model.predict(points), expected, atol=1e-6)


def test_model_names_are_registry_safe():
    assert registry.model_name("demo", "bunny") == "demo-bunny"
    assert registry.model_name("my set", "a/b") == "my_set-a_b"


def test_grid_task_blocks_equal_one_shot_evaluation_and_are_reused(registered, tmp_path):
    grid = GridConfig(resolution=20, chunk=8)
    store = str(tmp_path / "store.zarr")
    began = time.time()
    result = evaluate_field.fn("ball", store, registered["model_uri"], "fp1", grid, registered["uri"])
    took = time.time() - began
    assert result.reused is False and result.blocks == 27
    # the task's time splits into its own running time and the gaps when none of its chunks ran
    assert result.seconds > 0 and result.waiting_seconds >= 0
    assert result.seconds + result.waiting_seconds == pytest.approx(took, abs=0.05)
    group = open_store(store)["fields/ball"]
    sdf = group["sdf"]
    assert sdf.shape == (20, 20, 20) and sdf.chunks == (8, 8, 8)
    expected = evaluate_points(registered["spec"], registered["params"], block_points(grid, (slice(0, 20),) * 3))
    assert np.allclose(sdf[...], expected.reshape(20, 20, 20), atol=1e-6)
    assert np.allclose(group["x"][...], np.linspace(-1, 1, 20))
    assert group.attrs["spacing"] == pytest.approx(2 / 19) and group.attrs["complete"] is True
    again = evaluate_field.fn("ball", store, registered["model_uri"], "fp1", grid, registered["uri"])
    assert again.reused is True and again.fingerprint == result.fingerprint


def test_an_implicit_displacement_field_registers_and_loads_back(tmp_path):
    from inrcore.fields.build import idf_spec_for
    from inrcore.fields.idf import IdfSpec, init_idf_params

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = registry.ensure_experiment(uri, "inrflow-idf", (tmp_path / "artifacts").as_uri())
    spec = idf_spec_for(NetworkConfig(kind="idf", width=16, layers=1, idf_displacement_width=8))
    params = init_idf_params(spec, torch.Generator().manual_seed(0))
    run_id = registry.start_run(uri, experiment, "idf", {"training": {"steps": 1}}, {"inrflow.shape_id": "idf"})
    model_uri, _ = registry.register_field(uri, run_id, "unit-idf", "champion", spec, params, {"shape_id": "idf"},
                                           fingerprint="idf1")
    registry.end_run(uri, run_id)
    spec2, params2, meta, run2 = registry.load_registered_field(uri, model_uri)
    assert isinstance(spec2, IdfSpec) and spec2 == spec and meta == {"shape_id": "idf"} and run2 == run_id
    points = np.random.default_rng(0).uniform(-1, 1, (200, 3)).astype(np.float32)
    assert np.array_equal(evaluate_points(spec2, params2, points), evaluate_points(spec, params, points))


def test_range_mesh_task_falls_back_to_the_dense_lattice_when_bounds_cannot_pay(registered, tmp_path):
    from inrcore.queries.rangemesh import dense_mesh
    from inrcore.queries.settings import RangeMeshConfig
    from tasks.queries.rangemesh import range_mesh_field

    store_url = str(tmp_path / "store.zarr")
    common = (registered["model_uri"], "fp1")
    outcomes = {}
    for fallback in (True, False):
        settings = RangeMeshConfig(resolution=33, leaf=4, tasks=2, fallback=fallback)
        out = tmp_path / f"run-{fallback}"
        outcomes[fallback] = range_mesh_field.fn("ball", store_url, *common, settings, str(out), registered["uri"],
                                                 registered["run_id"])
        if fallback:  # the whole lattice stored, chunk by chunk, as the grid task stores a field
            lattice = np.asarray(open_store(store_url, mode="r")["range/ball/dense"][...])
            axis = np.linspace(-1.0, 1.0, 33, dtype=np.float32)
            points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
            expected = evaluate_points(registered["spec"], registered["params"], points).reshape(33, 33, 33)
            assert np.allclose(lattice, expected, atol=1e-5)
    dense, _ = dense_mesh(registered["spec"], registered["params"], 33)
    chosen, planned = outcomes[True].stats, outcomes[False].stats
    # The random SIREN's sign is certified nowhere with 8 symbols, so the estimate chooses the dense lattice.
    root = open_store(store_url, mode="r")
    group = root["range/ball"]
    assert chosen["method"] == "dense" and chosen["fallback"] is True and chosen["point_evaluations"] == 33 ** 3
    assert set(chosen["estimate"]["certified"]) == {0.0} and chosen["estimate"]["worthwhile"] is False
    assert planned["method"] == "range" and planned["fallback"] is False
    assert chosen["faces"] == planned["faces"] == len(dense.faces) > 0
    # The second call (no fallback) replaced the group: its leaves and values, and no dense lattice.
    assert "values" in group and "dense" not in group and group.attrs["method"] == "range"
    assert planned["leaves"] == group["values"].shape[0] == 8 ** 3
    assert chosen["evaluations"] == 33 ** 3 + chosen["box_evaluations"]
