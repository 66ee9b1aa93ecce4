"""The whole run killed mid-way (`inr run` and every process it started, as a power cut would) and
started again: what finished is reused, the rest is done, nothing is registered twice, and the results
are those of a run that was never interrupted. Real components: `inr run` in its own process group
(Prefect's temporary server, a Dask LocalCluster, Zarr on disk, MLflow SQLite)."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import trimesh
import yaml

from flows.pipeline import sdf_collection
from tasks import registry
from tests.flows.test_commands import INR, user_env


ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.faults
SHAPES = ("spot", "bunny", "fandisk")


def write_manifest(folder: Path) -> Path:
    for name in SHAPES:
        shutil.copy(ROOT / "datasets" / "meshes" / f"{name}.obj", folder / f"{name}.obj")
    manifest = folder / "restart.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "restart", "shapes": [f"{name}.obj" for name in SHAPES],
        "config": {"sampling": {"n_surface": 4000, "n_near": 3000, "n_uniform": 2000},
                   "training": {"steps": 200, "log_every": 100, "batch_surface": 512, "batch_offsurface": 256,
                                "batch_uniform": 256, "network": {"width": 32, "layers": 2}},
                   "grid": {"resolution": 32, "chunk": 16}, "metrics": {"n_points": 5000}}}))
    return manifest


def finished(run: Path) -> list[str]:
    """The shapes whose last stage has written everything: its record, mesh and both pictures."""
    return [s for s in SHAPES if all((run / p).is_file() for p in (
        f"shapes/{s}.json", f"meshes/{s}.ply", f"renders/{s}-input.png", f"renders/{s}-reconstruction.png"))]


def test_a_run_killed_mid_way_and_started_again_ends_as_an_uninterrupted_one(prefect_api, tmp_path, shared_cluster):
    manifest = write_manifest(tmp_path)
    run = tmp_path / "run"
    command = [str(INR), "run", str(manifest), "--out", str(run), "--workers", "1", "--quiet"]
    env = user_env(tmp_path / "home")
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while first.poll() is None and time.monotonic() < deadline and not finished(run):
        time.sleep(0.1)
    assert first.poll() is None, "the run ended before it could be killed: " + first.stderr.read()[-2000:]
    os.killpg(first.pid, signal.SIGKILL)  # the command, Prefect's server and the Dask processes at once
    first.wait()
    finished_before = finished(run)
    assert 1 <= len(finished_before) < len(SHAPES)

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    restarted = {r["shape_id"]: r for r in json.loads((run / "summary.json").read_text())["shapes"]}
    for shape in finished_before:  # nothing of a finished shape is done again
        assert restarted[shape]["reused"] == {"prepare": True, "train": True, "evaluate": True, "extract": True}
    redone = [s for s in SHAPES if s not in finished_before]
    assert any(not all(restarted[s]["reused"].values()) for s in redone)
    tracking = f"sqlite:///{run / 'mlflow.db'}"
    for shape in SHAPES:
        assert restarted[shape]["status"] == "ok", restarted[shape]["error"]
        assert len(registry.client(tracking).search_model_versions(f"name='restart-{shape}'")) == 1
        assert len(trimesh.load(run / "meshes" / f"{shape}.ply", process=False).faces) > 100

    # the same collection, never interrupted
    reference = sdf_collection(manifest=str(manifest), out_dir=str(tmp_path / "reference"),
                               dask_address=shared_cluster, quiet=True)
    for record in reference["shapes"]:
        for key, value in record["metrics"].items():
            if isinstance(value, float):
                assert restarted[record["shape_id"]]["metrics"][key] == pytest.approx(value, rel=1e-5), key
