"""The shape-space flow on a tiny collection: real Prefect, LocalCluster, Zarr and MLflow SQLite registry."""

import json
import subprocess
import sys

import pytest

from flows.shapespace_collection import shapespace_collection
from tasks.store import open_store
from tests.flows.shapespace_fixtures import tiny_collection


def registry_run(out, name):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    return client.get_model_version_by_alias(name, "champion").run_id


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, shared_cluster):
    folder = tmp_path_factory.mktemp("space")
    (folder / "meshes").mkdir()
    (folder / "meshes" / "empty.obj").write_text("")
    manifest = tiny_collection(folder, extra_shapes=[{"id": "empty", "path": "meshes/empty.obj"}])
    out = folder / "run"
    return folder, manifest, out, shapespace_collection(str(manifest), out_dir=str(out), dask_address=shared_cluster, quiet=True)


def test_the_flow_trains_registers_and_measures(first_run):
    folder, _, out, summary = first_run
    assert summary["ok"] == 6 and summary["failed"] == 1
    bad = next(r for r in summary["shapes"] if r["shape_id"] == "empty")
    assert "empty.obj" in bad["error"] and bad["stage"] == "samples"
    aggregate = summary["aggregate"]
    for mode in ("reconstruct", "complete-0", "complete-0.05", "occnet"):
        assert 0 < aggregate[f"{mode}/chamfer_l1@median"] < 0.5, mode
    assert 0 <= aggregate["occnet/iou@median"] <= 1
    held_out = next(r for r in summary["shapes"] if r["shape_id"] == "s2")
    assert held_out["metrics"]["reconstruct/fit_start"] in ("s0", "s1", "s3")  # a training sphere, not a box
    assert set(held_out["images"]) == {"reconstruct", "complete-0", "complete-0.05", "occnet"}
    assert (out / "shapespace_report.html").read_text().count("<img") == 3  # reconstruct, complete-0, occnet
    assert summary["interpolation"].endswith(".png")
    from mlflow import MlflowClient

    run_id = registry_run(out, "tiny-deepsdf")
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    assert [a.path for a in client.list_artifacts(run_id, "pictures")] == ["pictures/grid.png"]
    logged = client.get_run(run_id).data.metrics
    assert logged["test/reconstruct/chamfer_l1_median"] == pytest.approx(aggregate["reconstruct/chamfer_l1@median"])
    root = open_store(str(out / "store.zarr"), mode="r")
    assert dict(root["shapespace/samples/s0"].attrs)["complete"] is True
    assert list(root["shapespace/codes/reconstruct"].attrs["shape_ids"]) == ["s2"]
    assert list(root["shapespace/codes/reconstruct"].attrs["starts"]) == [held_out["metrics"]["reconstruct/fit_start"]]


def test_the_registered_space_loads_from_a_fresh_process(first_run):
    _, _, out, summary = first_run
    code = (
        "import mlflow, numpy as np\n"
        f"mlflow.set_tracking_uri('sqlite:///{out}/mlflow.db')\n"
        "m = mlflow.pyfunc.load_model('models:/tiny-deepsdf@champion')\n"
        "v = m.predict(np.array([[0, 0, 0], [0.99, 0.99, 0.99]], np.float32), params={'shape_id': 's3'})\n"
        "print(float(np.ravel(v)[0]), float(np.ravel(v)[1]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    inside, corner = map(float, done.stdout.split()[-2:])
    assert inside < 0 < corner


def test_a_second_run_reuses_everything(first_run, shared_cluster):
    _, manifest, out, first = first_run
    again = shapespace_collection(str(manifest), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    assert again["deepsdf"]["reused"] is True and again["deepsdf"]["version"] == first["deepsdf"]["version"]
    assert again["aggregate"]["reconstruct/chamfer_l1@median"] == pytest.approx(
        first["aggregate"]["reconstruct/chamfer_l1@median"])
    saved = json.loads((out / "shapespace_summary.json").read_text())
    assert saved["deepsdf"]["model_uri"] == "models:/tiny-deepsdf@champion"


def test_the_registered_occupancy_network_predicts_from_a_cloud(first_run):
    from mlflow import MlflowClient

    from inrcore.shapespace.occnet import load_occnet

    _, _, out, summary = first_run
    assert summary["occnet"]["model_uri"] == "models:/tiny-occnet@champion"
    # its threshold chosen on three training shapes: each candidate's median IoU logged, the best kept
    logged = MlflowClient(f"sqlite:///{out}/mlflow.db").get_run(registry_run(out, "tiny-occnet")).data.metrics
    rates = {k: v for k, v in logged.items() if k.startswith("threshold_iou/")}
    assert len(rates) == 19 and rates[f"threshold_iou/{logged['threshold']:.2f}"] == max(rates.values())
    assert load_occnet(out / "shapespace" / "occnet.safetensors")[1].threshold == logged["threshold"]
    code = (
        "import mlflow, numpy as np, trimesh\n"
        f"mlflow.set_tracking_uri('sqlite:///{out}/mlflow.db')\n"
        "m = mlflow.pyfunc.load_model('models:/tiny-occnet@champion')\n"
        "cloud = trimesh.creation.icosphere(3, radius=0.5).sample(300, seed=0).ravel().astype(float).tolist()\n"
        "v = m.predict(np.array([[0, 0, 0]], np.float32), params={'cloud': cloud})\n"
        "print(float(np.ravel(v)[0]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 <= float(done.stdout.split()[-1]) <= 1.0


def test_the_commands_take_the_registered_models_by_uri(first_run, tmp_path):
    from flows.cli import main

    folder, _, out, _ = first_run
    tracking = f"sqlite:///{out}/mlflow.db"
    sets = ["--set", "mesh.start=16", "--set", "mesh.levels=1", "--set", "metrics.n_points=2000",
            "--set", "sampling.n_samples=4000"]
    assert main(["deepsdf", "reconstruct", "models:/tiny-deepsdf@champion", str(folder / "meshes" / "s2.obj"),
                 "--tracking-uri", tracking, "--steps", "20", "--out", str(tmp_path / "r"), "--quiet", *sets]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["chamfer_l1"] > 0
    assert main(["occnet", "reconstruct", "models:/tiny-occnet@champion", str(folder / "meshes" / "s2.obj"),
                 "--tracking-uri", tracking, "--out", str(tmp_path / "o"), "--quiet", *sets]) == 0
    assert 0 <= json.loads((tmp_path / "o" / "metrics.json").read_text())["iou"] <= 1
    assert main(["occnet", "reconstruct", "models:/tiny-occnet@nope", str(folder / "meshes" / "s2.obj"),
                 "--tracking-uri", tracking, "--out", str(tmp_path / "x"), "--quiet"]) == 2
