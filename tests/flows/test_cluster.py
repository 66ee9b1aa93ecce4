"""The SDF flow beyond one machine, on real servers on 127.0.0.1 started by README's recipe
(`scripts/cluster-up.sh`): a Dask scheduler with two `dask worker` processes, an MLflow server whose
artifacts are served by the server, and an S3-compatible object server (moto's server mode) holding
the inputs, the Zarr store and every artifact. `inr run` is run as a user runs it."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from .recipe import BUCKET, ROOT, STATE, TINY, read_env_file, recipe_commands


pytestmark = pytest.mark.cluster


def test_the_recipe_is_up_source_upload_run_down():
    commands = recipe_commands()
    assert [c.split()[0:2] for c in commands] == [
        ["bash", "scripts/cluster-up.sh"], ["source", f"{STATE}/cluster.env"], [".venv/bin/python", "-c"],
        [".venv/bin/inr", "run"], [".venv/bin/prefect", "--no-prompt"], [".venv/bin/prefect", "deployment"],
        ["bash", "scripts/cluster-down.sh"]]


@pytest.fixture(scope="module")
def remote_run(cluster_recipe):
    """README's recipe (`tests/flows/recipe.py`, started with the session's first test by `cluster_recipe`)
    once it has run; its last command (cluster-down) after this module. Yields (the output, the folder,
    cluster.env's settings, the state folder)."""
    try:
        result, state = cluster_recipe.wait(), cluster_recipe.state
        assert (state / "cluster.env").is_file(), result.stderr
        yield result, cluster_recipe.here, read_env_file(state / "cluster.env"), state
    finally:
        stopped = cluster_recipe.down()
        # every server stops when asked (none left to be killed after 30 s), the Prefect worker too
        assert stopped.stdout.count(" stopped") == 7 and "killed" not in stopped.stdout, stopped.stdout


@pytest.fixture(scope="module")
def store_env(remote_run):
    """This process's environment with the object store's settings (as `source cluster.env` gives)."""
    settings = remote_run[2]
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "INRFLOW_STORAGE_OPTIONS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: settings[k] for k in keys})
    yield {**os.environ}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_a_run_with_everything_in_the_object_store(remote_run, store_env):
    from tasks import locations
    from tasks.store import open_store

    result, here, _, state = remote_run
    assert "inr-exit=0" in result.stdout, result.stdout + result.stderr
    output = result.stdout.split("inr-exit=")[0]
    printed = json.loads(output[output.rindex('{\n  "ok"'):output.rindex("}") + 1])  # inr run's last lines
    assert printed["ok"] == 2 and printed["failed"] == 0
    assert printed["summary"] == f"s3://{BUCKET}/run/summary.json"
    summary = locations.read_json(printed["summary"])
    records = {r["shape_id"]: r for r in summary["shapes"]}
    assert sorted(records) == ["bunny", "spot"]
    spot = records["spot"]
    assert spot["status"] == "ok" and spot["mesh_path"] == f"s3://{BUCKET}/run/meshes/spot.ply"
    assert spot["metrics"]["chamfer_l1"] > 0
    with locations.local_copy(spot["mesh_path"]) as local:
        import trimesh

        mesh = trimesh.load(local, process=False)
    assert len(mesh.faces) > 100 and np.isfinite(mesh.vertices).all()
    for picture in spot["images"].values():
        assert locations.read_bytes(picture)[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<img src=\"data:image/png;base64," in locations.read_bytes(f"s3://{BUCKET}/run/report.html")
    root = open_store(f"s3://{BUCKET}/run/store.zarr", mode="r")
    assert root["samples/spot"].attrs["complete"] is True and root["fields/spot"].attrs["complete"] is True
    # nothing of the run on this machine's disk: no run folder, store, registry or artifacts
    assert not [p for p in here.rglob("*") if not p.is_relative_to(state)  # (the servers' own state apart)
                and (p.name in ("runs", "mlruns", "mlartifacts", "mlflow.db") or p.suffix == ".zarr")]
    # the models' weights went through the MLflow server into its artifact store
    assert len(list((state / "mlflow" / "artifacts").rglob("*.safetensors"))) >= 2


def test_a_deployment_run_by_the_prefect_worker_gives_the_same_results(remote_run, store_env):
    from tasks import locations

    result = remote_run[0]
    deployment = result.stdout.split("inr-exit=")[-1]
    assert "deployment-exit=0" in deployment, deployment[-3000:] + result.stderr[-3000:]
    direct = locations.read_json(f"s3://{BUCKET}/run/summary.json")
    scheduled = locations.read_json(f"s3://{BUCKET}/scheduled/summary.json")
    assert scheduled["ok"] == 2 and scheduled["failed"] == 0
    by_shape = {r["shape_id"]: r for r in direct["shapes"]}
    for record in scheduled["shapes"]:
        assert record["mesh_path"] == f"s3://{BUCKET}/scheduled/meshes/{record['shape_id']}.ply"
        # the same settings and seeds on the same inputs: the same surface figures
        for key in ("chamfer_l1", "fscore"):
            assert record["metrics"][key] == pytest.approx(by_shape[record["shape_id"]]["metrics"][key], rel=1e-4)


def test_the_cluster_gives_the_results_of_one_machine(prefect_api, remote_run, store_env, shared_cluster, tmp_path):
    """The recipe's `inr run` (servers, object store) against the same manifest run with the embedded
    defaults on this machine: a local folder, store and SQLite registry, a LocalCluster."""
    import shutil

    from flows.pipeline import sdf_collection
    from tasks import locations

    shutil.copy(ROOT / "datasets" / "meshes" / "spot.obj", tmp_path / "spot.obj")
    (tmp_path / "demo.yaml").write_text("name: demo\nshapes: [spot.obj]\n")  # the recipe's manifest, one shape
    local = sdf_collection(manifest=str(tmp_path / "demo.yaml"), out_dir=str(tmp_path / "run"), overrides=TINY,
                           dask_address=shared_cluster, quiet=True)
    assert local["ok"] == 1 and (tmp_path / "run" / "mlflow.db").is_file()
    cluster = {r["shape_id"]: r for r in locations.read_json(f"s3://{BUCKET}/run/summary.json")["shapes"]}
    for record in local["shapes"]:
        for key in ("chamfer_l1", "fscore", "normal_consistency"):
            assert record["metrics"][key] == pytest.approx(cluster[record["shape_id"]]["metrics"][key], rel=1e-4), key


def test_the_registered_model_loads_by_alias_in_a_fresh_process(remote_run, store_env):
    code = ("import sys; from tasks import registry; "
            "spec, params, _, _ = registry.load_registered_field(sys.argv[1], 'models:/demo-spot@champion'); "
            "print(sum(v.numel() for v in params.values()))")
    loaded = subprocess.run([sys.executable, "-c", code, remote_run[2]["INRFLOW_TRACKING_URI"]], env=store_env,
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert int(loaded.stdout.split()[-1]) > 1000  # a 32-wide SIREN's weights


def test_a_second_run_reuses_everything_and_a_bad_shape_fails_alone_named_by_its_url(prefect_api, remote_run,
                                                                                    store_env):
    from flows.pipeline import sdf_collection
    from tasks import locations
    from tasks.store import open_store

    settings = remote_run[2]
    locations.write_text(f"s3://{BUCKET}/data/broken.obj", "v 0 0 0\nv 1 0 0\n")
    overrides = TINY
    locations.write_text(f"s3://{BUCKET}/data/more.yaml",
                         yaml.safe_dump({"name": "demo", "shapes": ["spot.obj", "bunny.obj", "broken.obj"]}))
    again = sdf_collection(manifest=f"s3://{BUCKET}/data/more.yaml", out_dir=f"s3://{BUCKET}/run",
                           tracking_uri=settings["INRFLOW_TRACKING_URI"], dask_address=settings["INRFLOW_DASK_ADDRESS"],
                           overrides=overrides, quiet=True)
    records = {r["shape_id"]: r for r in again["shapes"]}
    for shape in ("spot", "bunny"):
        assert records[shape]["status"] == "ok"
        assert records[shape]["reused"] == {"prepare": True, "train": True, "evaluate": True, "extract": True}
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["error"].startswith(f"prepare: s3://{BUCKET}/data/broken.obj: ")  # named by its URL
    assert "samples/broken" not in open_store(f"s3://{BUCKET}/run/store.zarr", mode="r")  # nothing half-written


def test_a_remote_run_folder_without_a_tracking_server_is_refused_up_front(tmp_path):
    from flows.collection import locations as run_locations
    from inrcore.errors import ConfigError

    with pytest.raises(ConfigError, match="needs an MLflow tracking server"):
        run_locations("remote", f"s3://{BUCKET}/other", None, None)


@pytest.mark.faults
def test_a_worker_killed_mid_training_leaves_one_model_version(prefect_api, remote_run, store_env):
    """A `dask worker` process killed while it trains (its nanny starts a new one): the training runs
    again on a live worker, the shape completes, and the registry holds exactly one version of it."""
    import signal
    import threading
    import time

    from distributed import Client

    from flows.pipeline import sdf_collection
    from tasks import locations, registry
    from tasks.store import open_store

    settings = remote_run[2]
    locations.write_text(f"s3://{BUCKET}/data/slow.yaml", yaml.safe_dump({
        "name": "slow", "shapes": [{"id": "cow", "path": "spot.obj"}],
        "config": {"sampling": {"n_surface": 4000, "n_near": 3000, "n_uniform": 2000},
                   "training": {"steps": 1500, "log_every": 100, "batch_surface": 256, "batch_offsurface": 256,
                                "batch_uniform": 256, "network": {"width": 64, "layers": 2}},
                   "grid": {"resolution": 32, "chunk": 16}, "metrics": {"n_points": 5000}}}))
    outcome = {}

    def run():
        outcome["summary"] = sdf_collection(manifest=f"s3://{BUCKET}/data/slow.yaml", out_dir=f"s3://{BUCKET}/slow",
                                            tracking_uri=settings["INRFLOW_TRACKING_URI"],
                                            dask_address=settings["INRFLOW_DASK_ADDRESS"], quiet=True)

    flow = threading.Thread(target=run)
    flow.start()
    killed = None
    with Client(settings["INRFLOW_DASK_ADDRESS"], timeout=60) as client:
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and flow.is_alive():
            time.sleep(0.5)
            try:
                prepared = open_store(f"s3://{BUCKET}/slow/store.zarr", mode="r")["samples/cow"].attrs.get("complete")
            except (KeyError, FileNotFoundError):
                continue
            busy = [w for w, tasks in client.processing().items() if tasks]
            if prepared and busy:
                time.sleep(1.0)  # into its 1,500 steps
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    assert not registry.client(settings["INRFLOW_TRACKING_URI"]).search_model_versions(
                        "name='slow-cow'"), "training ended before the worker could be killed"
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed = busy[0]
    flow.join(timeout=600)
    assert killed is not None, "the training task was never seen running"
    record = outcome["summary"]["shapes"][0]
    assert record["status"] == "ok", record["error"]
    versions = registry.client(settings["INRFLOW_TRACKING_URI"]).search_model_versions("name='slow-cow'")
    assert len(versions) == 1


@pytest.mark.faults
def test_an_interrupted_store_write_on_s3_is_never_read_as_finished(remote_run, store_env):
    """A group whose write dies half-way is removed; one whose writer died before its marker (a crash
    between the arrays and the attributes) is there but not finished, and is replaced when written again."""
    from tasks.store import finished_attrs, fresh_group, open_store, write_group

    url = f"s3://{BUCKET}/faults.zarr"

    class DiesWhenRead:
        shape, dtype = (3,), np.dtype("float32")

        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("the writer died")

        def __getitem__(self, key):
            raise RuntimeError("the writer died")

    with pytest.raises(RuntimeError, match="the writer died"):
        write_group(open_store(url), "half", "key-1", {"a": np.ones(3, np.float32), "b": DiesWhenRead()}, {})
    assert "half" not in open_store(url, mode="r")
    crashed = fresh_group(open_store(url), "crashed")
    crashed.create_array("a", shape=(3,), dtype="float32")[...] = np.ones(3, np.float32)
    assert finished_attrs(open_store(url, mode="r"), "crashed", "key-1") is None  # no marker: not a result
    write_group(open_store(url), "crashed", "key-1", {"a": np.full(3, 2.0, np.float32)}, {"n": 3})
    again = open_store(url, mode="r")
    assert finished_attrs(again, "crashed", "key-1")["n"] == 3
    assert np.asarray(again["crashed/a"][...]).tolist() == [2.0, 2.0, 2.0]


def test_the_shape_space_flow_keeps_everything_in_the_object_store(prefect_api, remote_run, store_env, tmp_path):
    from flows.shapespace_collection import shapespace_collection
    from tasks import locations
    from tests.flows.shapespace_fixtures import tiny_collection

    settings = remote_run[2]
    manifest = tiny_collection(tmp_path / "space")
    for path in sorted((tmp_path / "space").rglob("*")):
        if path.is_file():
            locations.copy_to(path, f"s3://{BUCKET}/space-data/{path.relative_to(tmp_path / 'space')}")
    assert manifest.name == "manifest.yaml"
    out = f"s3://{BUCKET}/space"
    summary = shapespace_collection(f"s3://{BUCKET}/space-data/manifest.yaml", out_dir=out,
                                    tracking_uri=settings["INRFLOW_TRACKING_URI"],
                                    dask_address=settings["INRFLOW_DASK_ADDRESS"], quiet=True)
    assert summary["ok"] == 6 and summary["failed"] == 0
    assert summary["deepsdf"]["path"] == f"{out}/shapespace/deepsdf.safetensors"
    assert locations.read_bytes(summary["deepsdf"]["path"])[8:9] == b"{"  # a safetensors header
    held_out = next(r for r in summary["shapes"] if r["shape_id"] == "s2")
    assert held_out["images"]["reconstruct"] == f"{out}/shapespace/reconstruct/s2.png"
    assert locations.read_bytes(held_out["images"]["reconstruct"])[:4] == b"\x89PNG"
    assert locations.is_file(f"{out}/shapespace/reconstruct/s2.ply")
    assert summary["grid"] == f"{out}/shapespace/grid.png" and summary["interpolation"].startswith(out)
    assert locations.read_bytes(f"{out}/shapespace_report.html").count(b"<img") == 3
    assert summary["summary"] == f"{out}/shapespace_summary.json"
    assert locations.read_json(summary["summary"])["aggregate"] == pytest.approx(summary["aggregate"])


def test_the_nerf_flow_keeps_everything_in_the_object_store_and_resumes_from_its_checkpoint(
        prefect_api, remote_run, store_env, tmp_path):
    from flows.nerfpipeline import nerf_collection
    from inrcore.nerf.meshscenes import scene_from_mesh
    from inrcore.nerf.settings import MeshSceneConfig
    from tasks import locations
    from tests.flows.test_nerfpipeline import TINY

    settings = remote_run[2]
    data = f"s3://{BUCKET}/scenes-data"
    locations.copy_to(ROOT / "datasets" / "meshes" / "spot.obj", f"{data}/spot.obj")
    ready = scene_from_mesh(ROOT / "datasets" / "meshes" / "spot.obj", tmp_path / "ready",
                            MeshSceneConfig(size=16, n_train=4, n_test=2, seed=5))
    locations.put_folder(ready, f"{data}/ready")
    locations.write_text(f"{data}/scenes.yaml", yaml.safe_dump({"name": "scenes", "shapes": ["spot.obj", "ready"],
                                                                "nerf": TINY}))
    out = f"s3://{BUCKET}/nerf"
    run = dict(out_dir=out, tracking_uri=settings["INRFLOW_TRACKING_URI"],
               dask_address=settings["INRFLOW_DASK_ADDRESS"], quiet=True)
    summary = nerf_collection(f"{data}/scenes.yaml", **run)
    assert summary["ok"] == 2 and summary["failed"] == 0, summary["shapes"]
    spot, given = summary["shapes"]
    assert spot["scene_dir"] == f"{out}/scenes/spot" and given["scene_dir"] == f"{data}/ready"
    assert locations.is_file(f"{out}/scenes/spot/transforms_train.json")
    for record in (spot, given):
        shape = record["shape_id"]
        assert record["images"]["test_views"] == f"{out}/nerf/{shape}/test_views.png"
        for picture in record["images"].values():
            assert locations.read_bytes(picture)[:3] in (b"\x89PN", b"GIF")
        assert locations.read_bytes(f"{out}/nerf/{shape}/field.safetensors")[8:9] == b"{"
        assert locations.read_json(f"{out}/nerf/{shape}/metrics.json")["stage"] == "complete"
        assert torch.load(io.BytesIO(locations.read_bytes(f"{out}/checkpoints/{shape}.pt")),
                          weights_only=True)["step"] == 4
    assert summary["summary"] == f"{out}/nerf_summary.json"
    assert locations.read_json(summary["summary"])["ok"] == 2
    assert locations.read_bytes(f"{out}/report.html").count(b"<img") >= 4
    # trained further (8 steps): a new run resumes from the checkpoint in the store, wherever it runs
    longer = {**TINY, "training": {**TINY["training"], "steps": 8}}
    locations.write_text(f"{data}/scenes.yaml", yaml.safe_dump({"name": "scenes", "shapes": ["spot.obj", "ready"],
                                                                "nerf": longer}))
    again = nerf_collection(f"{data}/scenes.yaml", **run)
    assert [r["reused"] for r in again["shapes"]] == [{"scene": True, "rays": True, "train": False}] * 2
    for record in again["shapes"]:
        metrics = locations.read_json(f"{out}/nerf/{record['shape_id']}/metrics.json")
        assert metrics["steps"] == 8 and metrics["resumed_from"] == 4
