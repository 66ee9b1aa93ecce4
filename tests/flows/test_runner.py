import os
from pathlib import Path

import dask
from distributed import Client, LocalCluster

from flows.collection import WORKER_MALLOC_ENV, configure_local_workers, locations, start_collection, task_runner


ROOT = Path(__file__).resolve().parents[2]


def worker_env():
    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "OMP_NUM_THREADS")}


def test_local_cluster_workers_keep_freed_memory_and_one_thread(monkeypatch):
    # Dask gives each worker OMP_NUM_THREADS=1 unless the user's environment sets it (then theirs
    # wins; the benchmarks' OMP_NUM_THREADS=2 did): the default is what is checked here
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    runner = task_runner(None, 1)
    assert runner.cluster_kwargs == {"n_workers": 1, "threads_per_worker": 1, "processes": True,
                                     "dashboard_address": None}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        (env,) = client.run(worker_env).values()
    assert env == {**WORKER_MALLOC_ENV, "OMP_NUM_THREADS": "1"}


def test_workers_are_given_no_earlier_flows_temporary_server():
    # outside a flow run (or with PREFECT_API_URL set, as in this session) no address is handed on,
    # and one an earlier flow of this process handed on is taken back
    stale = {"PREFECT_API_URL": "http://127.0.0.1:8111/api", "OTHER": "kept"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": stale}):
        configure_local_workers()
        assert dask.config.get("distributed.nanny.pre-spawn-environ") == {**WORKER_MALLOC_ENV, "OTHER": "kept"}


def test_existing_cluster_by_address():
    assert task_runner("tcp://10.1.2.3:8786", 4).address == "tcp://10.1.2.3:8786"


def test_default_locations(tmp_path):
    where = locations("demo", str(tmp_path / "r"), None, None)
    assert where == {"out_dir": str(tmp_path / "r"), "store_url": str(tmp_path / "r" / "store.zarr"),
                     "tracking_uri": f"sqlite:///{tmp_path / 'r' / 'mlflow.db'}",
                     "artifact_location": (tmp_path / "r" / "mlartifacts").as_uri()}
    remote = locations("demo", str(tmp_path / "r"), "s3://b/x.zarr", "http://mlflow:5000")
    assert remote["store_url"] == "s3://b/x.zarr" and remote["artifact_location"] is None


def test_a_run_starts_by_removing_the_stale_temporaries_of_a_killed_one(tmp_path):
    out = tmp_path / "run"
    (out / "meshes").mkdir(parents=True)
    stale, young = out / "meshes" / ".spot.ply.k3j9_x2a.tmp.ply", out / ".summary.json.a1b2c3d4.tmp.json"
    for path in (stale, young):
        path.write_text("half")
    os.utime(stale, (stale.stat().st_mtime - 3600,) * 2)
    data, _, where = start_collection(str(ROOT / "datasets" / "demo.yaml"), "config", None, str(out), None, None)
    assert where["out_dir"] == str(out) and data.name == "demo"
    assert not stale.exists() and young.exists()


def test_workers_sharing_a_machine_are_counted_from_inside_a_task(shared_cluster):
    from tasks.cluster import workers_on_this_machine

    assert workers_on_this_machine() == 1  # not in a Dask worker
    with Client(shared_cluster) as client:
        assert client.submit(workers_on_this_machine, pure=False).result() == 2  # the session's two, on 127.0.0.1
