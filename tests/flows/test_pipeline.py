"""The whole collection flow on real components: Prefect (the session's temporary server), a Dask LocalCluster,
a Zarr store on disk and an MLflow SQLite registry. Two real meshes and four bad inputs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from flows.pipeline import sdf_collection
from tasks import registry
from tasks.store import open_store


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    for name in ("spot", "bunny"):
        shutil.copy(ROOT / "datasets" / "meshes" / f"{name}.obj", folder / f"{name}.obj")
    (folder / "empty.obj").write_bytes(b"")
    (folder / "nanvert.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    (folder / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    manifest = folder / "tiny.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "tiny",
        "shapes": ["spot.obj", "bunny.obj", "empty.obj", "nanvert.obj", "points.obj", "missing.obj"],
        "config": {
            "sampling": {"n_surface": 8000, "n_near": 6000, "n_uniform": 3000},
            "training": {"steps": 300, "batch_surface": 1024, "batch_offsurface": 256, "batch_uniform": 1024,
                         "lr": 5e-4, "log_every": 50, "network": {"width": 64, "layers": 2}},
            "grid": {"resolution": 64, "chunk": 32},
            "metrics": {"n_points": 20000},
        },
    }))
    return manifest


@pytest.fixture(scope="module")
def first_run(prefect_api, collection, tmp_path_factory, shared_cluster):
    out = tmp_path_factory.mktemp("run")  # (the flow's own LocalCluster: every `inr` command test, test_commands)
    summary = sdf_collection(manifest=str(collection), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    return out, summary


def statuses(summary):
    return {r["shape_id"]: r["status"] for r in summary["shapes"]}


def test_good_shapes_complete_and_bad_ones_fail_alone(first_run, collection):
    out, summary = first_run
    assert statuses(summary) == {"spot": "ok", "bunny": "ok", "empty": "failed", "nanvert": "failed",
                                 "points": "failed", "missing": "failed"}
    errors = {r["shape_id"]: r["error"] for r in summary["shapes"] if r["status"] == "failed"}
    folder = collection.parent
    assert errors["empty"] == f"prepare: {folder / 'empty.obj'}: file is empty"
    assert errors["missing"] == f"prepare: {folder / 'missing.obj'}: file does not exist"
    assert errors["points"] == f"prepare: {folder / 'points.obj'}: mesh has no faces"
    assert errors["nanvert"].startswith(f"prepare: {folder / 'nanvert.obj'}: 1 vertices have NaN")
    assert (summary["ok"], summary["failed"]) == (2, 4)


def test_outputs_of_good_shapes(first_run):
    out, summary = first_run
    on_disk = json.loads((out / "summary.json").read_text())
    assert {r["shape_id"]: r["status"] for r in on_disk["shapes"]} == statuses(summary)
    html = (out / "report.html").read_text()
    assert "spot" in html and "missing.obj: file does not exist" in html and "data:image/png;base64," in html
    for record in summary["shapes"][:2]:
        # its loss curves, drawn from its MLflow run: the loss and its five terms, on a log axis
        section = html[html.index(f">{record['shape_id']} <span"):]
        section = section[:section.index("</section>")]
        assert section.count('<svg class="curve"') == 1 and ">training loss</text>" in section
        assert section.count("<polyline") == 6
        for term in ("loss", "surface", "normal", "eikonal", "offsurface", "sdf"):
            assert f'class="tick">{term}</text>' in section
        # and each stage's own running time beside the time it waited
        assert "<th>running s</th><th>waiting s</th>" in section
        assert set(record["waiting"]) == set(record["seconds"]) == {"prepare", "train", "evaluate", "extract"}
        assert all(value >= 0 for value in record["waiting"].values())
    for record in summary["shapes"][:2]:
        metrics = record["metrics"]
        # 300 small steps: a coarse but real reconstruction of the shape.
        assert metrics["chamfer_l1"] < 0.05 and metrics["fscore"] > 0.2 and metrics["normal_consistency"] > 0.7
        # The point-to-point figures ride along; samples lie on their surface, so never nearer.
        assert metrics["chamfer_l1_points"] >= metrics["chamfer_l1"] - 1e-12
        assert Path(record["mesh_path"]).is_file()
        assert Path(record["images"]["input"]).is_file() and Path(record["images"]["reconstruction"]).is_file()
        assert record["model_uri"] == f"models:/tiny-{record['shape_id']}@champion"


def test_store_holds_finished_groups_only_for_good_shapes(first_run):
    out, _ = first_run
    root = open_store(str(out / "store.zarr"), mode="r")
    assert sorted(root["samples"].group_keys()) == ["bunny", "spot"]
    assert sorted(root["fields"].group_keys()) == ["bunny", "spot"]
    samples = root["samples/spot"]
    assert samples.attrs["complete"] is True and samples.attrs["n_surface"] == 8000
    assert samples["points"].shape == (17000, 3) and samples["sdf"].shape == (17000,)
    assert np.all(samples["sdf"][:8000] == 0)
    assert samples.attrs["source"].endswith("spot.obj") and len(samples.attrs["source_sha256"]) == 64
    field = root["fields/spot"]
    assert field["sdf"].shape == (64, 64, 64) and field["sdf"].chunks == (32, 32, 32)
    values = field["sdf"][...]
    assert np.isfinite(values).all() and values.min() < 0 < values.max()


def test_registry_and_tracking(first_run):
    out, summary = first_run
    uri = summary["tracking_uri"]
    assert uri == f"sqlite:///{out / 'mlflow.db'}"
    client = registry.client(uri)
    names = sorted(m.name for m in client.search_registered_models())
    assert names == ["tiny-bunny", "tiny-spot"]  # nothing registered for the bad shapes
    spot = summary["shapes"][0]
    run = client.get_run(spot["mlflow_run_id"])
    assert run.data.params["training.steps"] == "300"
    assert run.data.metrics["eval/chamfer_l1"] == pytest.approx(spot["metrics"]["chamfer_l1"])
    assert run.data.metrics["eval/chamfer_l1_points"] == pytest.approx(spot["metrics"]["chamfer_l1_points"])
    curve = client.get_metric_history(spot["mlflow_run_id"], "train/loss")
    assert [m.step for m in curve] == [50, 100, 150, 200, 250, 300]


def test_rerun_reuses_everything_and_recovers_from_an_interrupted_stage(first_run, collection, shared_cluster):
    out, summary = first_run
    client = registry.client(summary["tracking_uri"])
    versions_before = len(client.search_model_versions("name='tiny-spot'"))

    again = sdf_collection(manifest=str(collection), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    for record in again["shapes"][:2]:
        assert record["reused"] == {"prepare": True, "train": True, "evaluate": True, "extract": True}
        assert record["metrics"] == next(r for r in summary["shapes"] if r["shape_id"] == record["shape_id"])["metrics"]
    assert len(client.search_model_versions("name='tiny-spot'")) == versions_before

    # A crash in the middle of writing spot's grid leaves its group unfinished; one while bunny's
    # pictures were drawn (after its metrics were recorded) leaves it without its reconstruction picture.
    root = open_store(str(out / "store.zarr"))
    root["fields/spot"].attrs.update({"complete": False})
    bunny = next(r for r in summary["shapes"] if r["shape_id"] == "bunny")
    Path(bunny["images"]["reconstruction"]).unlink()
    third = sdf_collection(manifest=str(collection), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    assert third["shapes"][1]["reused"]["extract"] is False  # only its pictures drawn again
    assert third["shapes"][1]["metrics"] == bunny["metrics"] and Path(bunny["images"]["reconstruction"]).is_file()
    spot = third["shapes"][0]
    assert spot["status"] == "ok"
    # Only the grid is computed again; the surface record depends on the same inputs, so it stands.
    assert spot["reused"] == {"prepare": True, "train": True, "evaluate": False, "extract": True}
    assert third["shapes"][1]["reused"]["evaluate"] is True
    assert open_store(str(out / "store.zarr"))["fields/spot"].attrs["complete"] is True


def test_same_flow_on_an_existing_cluster_an_fsspec_url_and_a_given_tracking_uri(prefect_api, collection, tmp_path,
                                                                                   shared_cluster):
    manifest = tmp_path / "one.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "one", "shapes": [str(collection.parent / "spot.obj")],
        "config": {"sampling": {"n_surface": 4000, "n_near": 3000, "n_uniform": 2000},
                   "training": {"steps": 20, "batch_surface": 256, "batch_offsurface": 256, "batch_uniform": 256,
                                "network": {"width": 32, "layers": 1}},
                   "grid": {"resolution": 32, "chunk": 16}, "metrics": {"n_points": 5000},
                   "queries": {"isopoints": 300, "range_mesh": True,
                               "range": {"resolution": 33, "leaf": 4, "tasks": 3, "fallback": False}}},
    }))
    store_url = (tmp_path / "elsewhere" / "fields.zarr").as_uri()
    tracking = f"sqlite:///{tmp_path / 'tracking' / 'mlflow.db'}"
    (tmp_path / "tracking").mkdir()
    summary = sdf_collection(manifest=str(manifest), out_dir=str(tmp_path / "run"), store_url=store_url,
                             tracking_uri=tracking, dask_address=shared_cluster, quiet=True)
    again = sdf_collection(manifest=str(manifest), out_dir=str(tmp_path / "run"), store_url=store_url,
                           tracking_uri=tracking, dask_address=shared_cluster, quiet=True)
    assert summary["shapes"][0]["status"] == "ok", summary["shapes"][0]["error"]
    _check_query_stages(summary["shapes"][0], store_url, tracking)
    assert again["shapes"][0]["reused"] == {stage: True for stage in
                                           ("prepare", "train", "evaluate", "extract", "isopoints", "range-mesh")}
    assert again["shapes"][0]["range_mesh"] == summary["shapes"][0]["range_mesh"]
    assert summary["store_url"] == store_url and summary["tracking_uri"] == tracking
    assert open_store(store_url, mode="r")["fields/spot"].attrs["complete"] is True
    assert not (tmp_path / "run" / "store.zarr").exists() and not (tmp_path / "run" / "mlflow.db").exists()
    assert registry.find_model_version(tracking, "one-spot", registry.client(tracking).get_model_version_by_alias(
        "one-spot", "champion").tags["fingerprint"]) is not None


def _check_query_stages(record, store_url, tracking):
    """Iso-points in Zarr on the field's surface; the range-bound mesh equal to dense marching cubes."""
    import torch
    import trimesh

    from inrcore.fields.networks import evaluate_field
    from inrcore.queries.rangemesh import dense_mesh

    spec, params, _, _ = registry.load_registered_field(tracking, record["model_uri"])
    root = open_store(store_url, mode="r")
    iso = root["isopoints/spot"]
    points = np.asarray(iso["points"][...])
    assert iso.attrs["complete"] is True and len(points) == record["isopoints"]["count"] > 0
    assert np.asarray(iso["normals"][...]).shape == points.shape
    assert evaluate_field(spec, params, torch.as_tensor(points)).abs().max().item() < 1e-3
    ranged = record["range_mesh"]
    group = root["range/spot"]
    assert group.attrs["complete"] is True and group.attrs["tasks"] == 3
    assert group["values"].shape[0] == group["leaves"].shape[0] == group.attrs["leaves"]
    mesh = trimesh.load(ranged["mesh_path"], process=False)
    dense, _ = dense_mesh(spec, params, 33)
    assert len(mesh.faces) == ranged["faces"] == len(dense.faces) > 0
    assert np.allclose(np.sort(mesh.vertices, axis=0), np.sort(dense.vertices, axis=0), atol=1e-5)
    assert ranged["evaluations"] == ranged["box_evaluations"] + ranged["point_evaluations"] > 0


def test_training_batches_take_full_batches_and_the_rest_when_no_more_come():
    from flows.pipeline import training_batches

    waiting = ["a", "b", "c"]
    assert training_batches(waiting, 2, more_coming=True) == [["a", "b"]] and waiting == ["c"]
    assert training_batches(waiting, 2, more_coming=True) == [] and waiting == ["c"]
    assert training_batches(waiting, 2, more_coming=False) == [["c"]] and waiting == []
    assert training_batches([], 2, more_coming=False) == []


def test_auto_batches_are_planned_for_the_training_device():
    from inrcore.sdf.settings import TrainConfig
    from tasks.sdf.train import BatchPlan, plan_training_batch

    assert plan_training_batch.fn(TrainConfig(shapes_per_batch="auto", device="cpu"), 50_000, 70_000) == BatchPlan(
        shapes=1, device="cpu")


def test_every_kind_trains_in_batches_and_fits_with_isopoints_shape_by_shape():
    from flows.pipeline import training_batch_size
    from inrcore.fields.settings import NetworkConfig
    from inrcore.sdf.settings import IsoPointsConfig, TrainConfig

    for kind in ("siren", "igr", "relu-pe", "idf"):
        assert training_batch_size(TrainConfig(shapes_per_batch=8, network=NetworkConfig(kind=kind))) == 8
    assert training_batch_size(TrainConfig(shapes_per_batch="auto")) == "auto"
    with_isopoints = TrainConfig(shapes_per_batch=8, isopoints=IsoPointsConfig(enabled=True))
    assert training_batch_size(with_isopoints) == 1


def test_a_batch_outcome_is_split_per_shape_and_a_batch_failure_is_each_shapes():
    from flows.stages import per_shape as _per_shape

    error = RuntimeError("out of memory")
    assert _per_shape([{"version": "1"}, {"version": "2"}], 2, batched=True, failed=False) == [{"version": "1"},
                                                                                                 {"version": "2"}]
    assert _per_shape(error, 2, batched=True, failed=True) == [error, error]
    assert _per_shape({"version": "1"}, 1, batched=False, failed=False) == [{"version": "1"}]


def test_shapes_trained_in_batches_are_registered_and_reused(prefect_api, collection, tmp_path, shared_cluster):
    from inrcore.sdf.settings import TrainConfig
    from inrcore.settings import config_from_dict, config_to_dict, fingerprint

    shutil.copy(ROOT / "datasets" / "meshes" / "fandisk.obj", tmp_path / "fandisk.obj")
    folder = collection.parent
    training = {"steps": 20, "batch_surface": 256, "batch_offsurface": 256, "batch_uniform": 256, "log_every": 10,
                "shapes_per_batch": 2, "network": {"width": 32, "layers": 1}}
    manifest = tmp_path / "batched.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "batched",
        "shapes": [str(folder / "spot.obj"), str(folder / "bunny.obj"), str(folder / "empty.obj"),
                   str(tmp_path / "fandisk.obj")],
        "config": {"sampling": {"n_surface": 3000, "n_near": 2000, "n_uniform": 1000},
                   "training": training, "grid": {"resolution": 32, "chunk": 16}, "metrics": {"n_points": 3000}},
    }))
    out = tmp_path / "run"
    summary = sdf_collection(manifest=str(manifest), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    assert statuses(summary) == {"spot": "ok", "bunny": "ok", "empty": "failed", "fandisk": "ok"}
    uri = summary["tracking_uri"]
    client = registry.client(uri)
    assert sorted(m.name for m in client.search_registered_models()) == ["batched-bunny", "batched-fandisk",
                                                                         "batched-spot"]
    # The same fingerprint train_sdf gives (shapes_per_batch left out), so one-by-one runs reuse these too.
    unbatched = config_to_dict(config_from_dict(TrainConfig, {**training, "shapes_per_batch": 1}))
    del unbatched["shapes_per_batch"]
    del unbatched["isopoints"]  # off: not part of the fingerprint either
    root = open_store(str(out / "store.zarr"), mode="r")
    for record in (r for r in summary["shapes"] if r["status"] == "ok"):
        name = f"batched-{record['shape_id']}"
        version = client.get_model_version_by_alias(name, "champion")
        samples_key = root[f"samples/{record['shape_id']}"].attrs["fingerprint"]
        assert version.tags["fingerprint"] == fingerprint("field", samples_key, unbatched)
        assert version.run_id == record["mlflow_run_id"] and record["model_uri"] == f"models:/{name}@champion"
        run = client.get_run(record["mlflow_run_id"])
        assert run.data.params["training.shapes_per_batch"] == "2" and run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [10, 20]
        assert record["reused"] == {"prepare": False, "train": False, "evaluate": False, "extract": False}
        assert np.isfinite(record["metrics"]["chamfer_l1"])

    again = sdf_collection(manifest=str(manifest), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    assert statuses(again) == statuses(summary)
    for record in (r for r in again["shapes"] if r["status"] == "ok"):
        assert record["reused"] == {"prepare": True, "train": True, "evaluate": True, "extract": True}
        assert len(client.search_model_versions(f"name='batched-{record['shape_id']}'")) == 1


def test_point_clouds_run_beside_meshes_and_a_bad_cloud_fails_alone(prefect_api, tmp_path, shared_cluster):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(ROOT / "datasets" / "meshes" / "spot.obj", folder / "spot.obj")
    d = np.random.default_rng(0).normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    np.savetxt(folder / "ball.xyz", np.hstack([np.array([1.0, 2.0, 3.0]) + 0.5 * d, d]))
    broken = np.hstack([0.5 * d[:500], d[:500]])
    broken[10, 2] = np.nan
    np.savetxt(folder / "holey.xyz", broken)
    overrides = {"sampling": {"n_surface": 3000, "n_near": 2000, "n_uniform": 1000},
                 "training": {"steps": 100, "batch_surface": 512, "batch_offsurface": 256, "batch_uniform": 512,
                              "lr": 1e-3, "log_every": 50, "network": {"kind": "igr", "width": 32, "layers": 2},
                              "shapes_per_batch": "auto"},  # on the CPU: one by one
                 "grid": {"resolution": 32, "chunk": 16}, "metrics": {"n_points": 3000}}
    out = tmp_path / "run"
    summary = sdf_collection(manifest=str(folder), out_dir=str(out), dask_address=shared_cluster, overrides=overrides,
                             quiet=True)
    assert statuses(summary) == {"ball": "ok", "holey": "failed", "spot": "ok"}
    assert json.loads(Path(summary["summary"]).read_text())["settings"]["shapes_per_batch"] == 1
    errors = {r["shape_id"]: r["error"] for r in summary["shapes"]}
    assert errors["holey"] == f"prepare: {folder / 'holey.xyz'}: 1 points have NaN or infinite coordinates"
    for record in (r for r in summary["shapes"] if r["status"] == "ok"):
        assert all(np.isfinite(v) for v in record["metrics"].values())
        assert Path(record["images"]["input"]).is_file() and Path(record["mesh_path"]).is_file()
    ball = next(r for r in summary["shapes"] if r["shape_id"] == "ball")
    assert ball["metrics"]["chamfer_l1"] < 0.04  # 0.020 measured with inrcore.sdf.fitshape.fit_shape alike

    samples = open_store(str(out / "store.zarr"), mode="r")["samples/ball"]
    assert samples.attrs["input_kind"] == "points" and samples.attrs["points"] == 3000
    sdf = samples["sdf"][...]
    assert np.all(sdf[:3000] == 0) and np.isnan(sdf[3000:]).all()
    assert open_store(str(out / "store.zarr"), mode="r")["samples/spot"].attrs["input_kind"] == "mesh"
