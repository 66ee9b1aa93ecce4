"""A collection whose object store stops answering: the shape that needs it fails alone, with a message
naming the file and how long the store was tried; the rest of the collection completes. Real
components: moto's S3 server on 127.0.0.1 (paused), a Dask LocalCluster, Zarr on disk, MLflow SQLite."""

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from flows.pipeline import sdf_collection
from tasks import locations, outages
from tests.tasks.test_outages import free_port, wait_until_answering


ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.faults


def test_a_shape_whose_store_is_down_fails_alone_and_says_so(prefect_api, tmp_path, monkeypatch):
    port = free_port()
    moto = str(Path(sys.executable).parent / "moto_server")
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_answering(port)
        # the LocalCluster's workers inherit this environment
        for name, value in {"AWS_ACCESS_KEY_ID": "inrflow-test", "AWS_SECRET_ACCESS_KEY": "inrflow-test",
                            "AWS_DEFAULT_REGION": "us-east-1", outages.PATIENCE_VARIABLE: "2",
                            locations.OPTIONS_VARIABLE: json.dumps({
                                "endpoint_url": f"http://127.0.0.1:{port}",
                                "config_kwargs": {"connect_timeout": 1, "read_timeout": 1,
                                                  "retries": {"max_attempts": 1}}})}.items():
            monkeypatch.setenv(name, value)
        bucket = f"outage-{uuid.uuid4().hex[:12]}"
        remote = f"s3://{bucket}/data/bunny.obj"
        locations.filesystem(remote)[0].mkdir(bucket)
        locations.copy_to(ROOT / "datasets" / "meshes" / "bunny.obj", remote)
        shutil.copy(ROOT / "datasets" / "meshes" / "spot.obj", tmp_path / "spot.obj")
        manifest = tmp_path / "mixed.yaml"
        manifest.write_text(yaml.safe_dump({
            "name": "mixed", "shapes": ["spot.obj", remote],
            "config": {"sampling": {"n_surface": 4000, "n_near": 3000, "n_uniform": 2000},
                       "training": {"steps": 20, "network": {"width": 32, "layers": 1}},
                       "grid": {"resolution": 32, "chunk": 16}, "metrics": {"n_points": 5000}}}))
        os.killpg(server.pid, signal.SIGSTOP)  # the object store hangs from here on
        summary = sdf_collection(manifest=str(manifest), out_dir=str(tmp_path / "run"), workers=1, quiet=True)
    finally:
        os.killpg(server.pid, signal.SIGCONT)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    records = {r["shape_id"]: r for r in summary["shapes"]}
    assert records["spot"]["status"] == "ok" and records["spot"]["metrics"]["chamfer_l1"] > 0
    assert records["bunny"]["status"] == "failed"
    expected = f"prepare: the object store holding {remote} did not answer: tried "
    assert records["bunny"]["error"].startswith(expected)
    assert "(INRFLOW_OUTAGE_SECONDS=2); last error: " in records["bunny"]["error"]
    assert summary["ok"] == 1 and summary["failed"] == 1
