"""The collection flow's skeleton stage on real components (the session's temporary Prefect server, a Dask LocalCluster,
Zarr on disk, MLflow on SQLite): switched on in the manifest, its four tasks per shape, its files
in the run folder, its picture in the report, and a re-run reusing it."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from flows.pipeline import sdf_collection, stages_for
from inrcore.settings import config_replace
from inrcore.skeleton.analytic import capsule
from inrcore.skeleton.settings import CollectionConfig
from inrcore.skeleton.skeletonfiles import read_skeleton_ply
from tasks import registry
from tasks.store import open_store


ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "sampling": {"n_surface": 4000, "n_near": 3000, "n_uniform": 1000},
    "training": {"steps": 60, "batch_surface": 512, "batch_offsurface": 256, "batch_uniform": 512,
                 "log_every": 20, "network": {"width": 32, "layers": 2}},
    "grid": {"resolution": 32, "chunk": 32},
    "metrics": {"n_points": 5000},
    "skeleton": {"enabled": True, "n_input": 5000, "trace": {"n_surface": 500},
                 "field": {"steps": 300, "batch_box": 512, "batch_surface": 512, "n_learning": 2000,
                           "start_steps": 100, "log_every": 40}},
}


def test_skeleton_stages_follow_the_settings():
    base = CollectionConfig()
    assert stages_for(base) == ("prepare", "train", "evaluate", "extract")
    neural = config_replace(base, {"skeleton": {"enabled": True}, "queries": {"isopoints": 100}})
    assert stages_for(neural)[4:] == ("isopoints", "skeleton-field", "skeleton-trace", "skeleton-select",
                                      "skeleton-link")
    axis = config_replace(base, {"skeleton": {"enabled": True, "method": "coverage-axis"}})
    assert stages_for(axis)[4:] == ("skeleton-trace", "skeleton-select", "skeleton-link")


@pytest.fixture(scope="module")
def skeleton_run(prefect_api, tmp_path_factory, shared_cluster):
    folder = tmp_path_factory.mktemp("skeletons")
    capsule(0.35, 0.5).mesh(24).export(folder / "pill.obj")
    shutil.copy(ROOT / "datasets" / "meshes" / "spot.obj", folder / "spot.obj")
    manifest = folder / "pills.yaml"
    manifest.write_text(yaml.safe_dump({"name": "pills", "shapes": ["pill.obj", "spot.obj", "missing.obj"],
                                        "config": TINY}))
    out = tmp_path_factory.mktemp("run")
    summary = sdf_collection(manifest=str(manifest), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    return manifest, out, summary


def test_each_shape_gets_its_skeleton_files_store_groups_and_metrics(skeleton_run):
    _, out, summary = skeleton_run
    records = {r["shape_id"]: r for r in summary["shapes"]}
    assert {sid: r["status"] for sid, r in records.items()} == {"pill": "ok", "spot": "ok", "missing": "failed"}
    root = open_store(str(out / "store.zarr"), mode="r")
    client = registry.client(summary["tracking_uri"])
    for shape_id in ("pill", "spot"):
        record = records[shape_id]
        skeleton = record["skeleton"]
        assert set(record["seconds"]) >= {"skeleton-field", "skeleton-trace", "skeleton-select", "skeleton-link"}
        for part in ("field", "candidates", "selection", "skeleton"):
            assert root[f"skeletons/{shape_id}/{part}"].attrs["complete"] is True
        folder = out / "skeletons" / shape_id
        assert sorted(p.name for p in folder.iterdir()) == ["balls.ply", "metrics.json", "skeleton.ma", "skeleton.ply",
                                                           "skeleton.png"]
        points, radii, edges, faces = read_skeleton_ply(folder / "skeleton.ply")
        assert len(points) == skeleton["balls"] == root[f"skeletons/{shape_id}/skeleton"]["points"].shape[0] >= 1
        assert record["images"]["skeleton"] == str(folder / "skeleton.png")
        metrics = client.get_run(record["mlflow_run_id"]).data.metrics
        assert metrics["skeleton/balls"] == skeleton["balls"]
    # The capsule (radius 0.35 about the z segment |z| <= 0.5, in its own coordinates): after a short
    # fit (300 small steps) its balls lie inside, nearer the axis than the surface (BENCHMARKS.md
    # measures fits of the default length).
    points, radii, _, _ = read_skeleton_ply(out / "skeletons" / "pill" / "skeleton.ply")
    axis = np.linalg.norm(points - np.column_stack([0 * points[:, :2], np.clip(points[:, 2], -0.5, 0.5)]), axis=1)
    assert axis.max() < 0.3 and np.median(axis) < 0.15 and np.all(radii < 0.35 - axis + 0.03)
    html = (out / "report.html").read_text()
    assert html.count("<figcaption>skeleton</figcaption>") == 3  # one per shape (the failed one: no image)


def test_a_rerun_reuses_the_skeleton_stages(skeleton_run, shared_cluster):
    manifest, out, summary = skeleton_run
    again = sdf_collection(manifest=str(manifest), out_dir=str(out), dask_address=shared_cluster, quiet=True)
    for record in again["shapes"][:2]:
        assert all(record["reused"][stage] for stage in ("skeleton-field", "skeleton-trace", "skeleton-select",
                                                          "skeleton-link"))
        first = next(r for r in summary["shapes"] if r["shape_id"] == record["shape_id"])
        assert record["skeleton"] == first["skeleton"]
