"""The NeRF collection flow on real components: Prefect (the session's temporary server), a Dask LocalCluster,
a Zarr store on disk and an MLflow SQLite registry; one mesh, one ready-made scene folder and
one bad mesh."""

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from flows.nerfpipeline import nerf_collection
from inrcore.geometry.rays import rays_from_cameras
from inrcore.nerf.meshscenes import scene_from_mesh
from inrcore.nerf.scenes import load_scene_split
from inrcore.nerf.settings import MeshSceneConfig
from tasks import registry
from tasks.store import open_store


ROOT = Path(__file__).resolve().parents[2]
TINY = {"scene": {"size": 16, "n_train": 6, "n_test": 2},
        "rays": {"chunk": 512},
        "training": {"model": "ngp", "steps": 4, "batch_rays": 64, "hash_levels": 4, "hash_log2_size": 12,
                     "hash_base_resolution": 4, "hash_finest_resolution": 32, "ngp_width": 16,
                     "grid_resolution": 8, "render_step": 0.05, "eval_every": 2, "eval_views": 1,
                     "checkpoint_every": 2},
        "pictures": {"turntable_frames": 2, "turntable_size": 8}}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nerf-collection")
    shutil.copy(ROOT / "datasets" / "meshes" / "spot.obj", folder / "spot.obj")
    (folder / "broken.obj").write_text("v 0 0 0\nv nan 1 0\nv 1 0 0\nf 1 2 3\n")
    scene_from_mesh(folder / "spot.obj", folder / "ready", MeshSceneConfig(size=16, n_train=4, n_test=2, seed=5))
    manifest = folder / "scenes.yaml"
    manifest.write_text(yaml.safe_dump({"name": "scenes", "shapes": ["spot.obj", "ready", "broken.obj"],
                                        "nerf": TINY}))
    return manifest


@pytest.fixture(scope="module")
def runs(prefect_api, collection, tmp_path_factory, shared_cluster):
    out = tmp_path_factory.mktemp("nerf-run")
    first = nerf_collection(manifest=str(collection), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    second = nerf_collection(manifest=str(collection), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    return out, first, second


def test_scenes_train_and_the_bad_mesh_fails_alone(runs, collection):
    out, first, _ = runs
    status = {r["shape_id"]: r["status"] for r in first["shapes"]}
    assert status == {"spot": "ok", "ready": "ok", "broken": "failed"}
    broken = next(r for r in first["shapes"] if r["shape_id"] == "broken")
    assert broken["error"].startswith(f"scene: {collection.parent / 'broken.obj'}: ")
    for record in first["shapes"][:2]:
        assert record["steps"] == 4 and record["model"] == "ngp"
        assert 0 < record["psnr"] < 60 and -1 <= record["ssim"] <= 1
        for path in record["images"].values():
            assert Path(path).is_file()
    summary = json.loads((out / "nerf_summary.json").read_text())
    assert summary["ok"] == 2 and summary["failed"] == 1


def test_report_has_psnr_curves_and_each_stages_own_time(runs):
    out, first, _ = runs
    assert first["report"] == str(out / "report.html")
    page = (out / "report.html").read_text()
    for record in first["shapes"][:2]:
        section = page[page.index(f">{record['shape_id']} <span"):]
        section = section[:section.index("</section>")]
        # a loss plot and a PSNR plot (train every 50 steps and step 1; test every eval_every = 2 steps)
        assert section.count('<svg class="curve"') == 2 and ">PSNR (dB)</text>" in section
        assert "<th>running s</th><th>waiting s</th>" in section
        assert set(record["seconds"]) == set(record["waiting"]) == {"scene", "rays", "train"}
        assert all(value >= 0 for value in record["waiting"].values())
        record_file = json.loads((out / "nerf" / record["shape_id"] / "metrics.json").read_text())
        assert record_file["stage"] == "complete" and record_file["psnr"] == record["psnr"]
        assert set(record_file["images"]) == {"test_views", "depth", "turntable"}
    assert "<th>psnr</th><th>ssim</th>" in page


def test_rays_in_zarr_are_the_scene_pixels_in_a_fixed_order(runs):
    out, first, _ = runs
    group = open_store(str(out / "store.zarr"), mode="r")["rays/spot"]
    assert group.attrs["complete"] is True and group.attrs["count"] == 6 * 16 * 16
    assert group["origins"].chunks == (512, 3)
    split = load_scene_split(out / "scenes" / "spot", "train")
    import torch

    origins, directions = rays_from_cameras(torch.from_numpy(split.poses), split.intrinsics)
    stored = np.asarray(group["directions"][...])
    colours = np.asarray(group["colours"][...])
    # the same set of rays as the images' pixels, each with its own colour
    key = lambda d, c: np.round(np.concatenate([d, c], axis=1), 5)  # noqa: E731
    expected = key(directions.reshape(-1, 3).numpy(), split.images.reshape(-1, 3))
    got = key(stored, colours)
    assert sorted(map(tuple, expected)) == sorted(map(tuple, got))
    assert not np.array_equal(stored, directions.reshape(-1, 3).numpy())  # shuffled, not image order


def test_rerun_reuses_every_stage(runs):
    _, first, second = runs
    for record in second["shapes"]:
        if record["status"] == "ok":
            assert record["reused"] == {"scene": True, "rays": True, "train": True}
            before = next(r for r in first["shapes"] if r["shape_id"] == record["shape_id"])
            assert record["psnr"] == before["psnr"] and record["version"] == before["version"]


def test_registered_field_renders_through_mlflow(runs):
    out, first, _ = runs
    record = next(r for r in first["shapes"] if r["shape_id"] == "spot")
    assert record["model_uri"] == "models:/scenes-spot-nerf@champion"
    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(record["model_uri"])
    rays = np.array([[0.0, 0.0, 4.0, 0.0, 0.0, -1.0], [3.0, 3.0, 4.0, 0.0, 0.0, -1.0]], dtype=np.float32)
    colours = model.predict(rays)
    assert colours.shape == (2, 3) and np.all((colours >= 0) & (colours <= 1))
    # a ray that never enters the scene box shows the white background
    np.testing.assert_allclose(colours[1], [1.0, 1.0, 1.0], atol=1e-6)
    c = registry.client(f"sqlite:///{out / 'mlflow.db'}")
    run = c.get_run(record["run_id"])
    assert "test/psnr_final" in run.data.metrics and "train/loss" in run.data.metrics
    assert run.data.metrics["test/psnr_final"] == pytest.approx(record["psnr"])
    history = c.get_metric_history(record["run_id"], "test/psnr")
    assert [m.step for m in history] == [2, 4]
    artifacts = {a.path for a in c.list_artifacts(record["run_id"], "renders")}
    assert {"renders/test_views.png", "renders/depth.png", "renders/turntable.gif"} <= artifacts

