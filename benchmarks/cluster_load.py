"""Benchmark: a collection of small shapes through the whole SDF flow on the loopback servers of README's
"Running on a cluster" recipe (issue 17), at several numbers of Dask workers.

For each worker count: `scripts/cluster-up.sh STATE --workers N --s3 BUCKET` (an MLflow server serving
its artifacts, a Dask scheduler and N single-threaded `dask worker` processes, moto's S3 server), the
shapes and a manifest uploaded to the object store, then `inr run s3://BUCKET/data/load.yaml --out
s3://BUCKET/run --dask-address ... --tracking-uri ...` with tiny settings, as a user runs it, while
this script samples every worker's resident memory once a second (`distributed.Client.run`);
`cluster-down.sh` at the end. The shapes are seeded primitives (boxes, spheres, capsules, cylinders
of random proportions, a few hundred faces each), so the work per shape is small and the figures show
the pipeline's own costs.

Figures per worker count: the command's wall seconds and the flow's (from the first shape submitted to
the summary, `summary.json`'s `seconds`); shapes per minute over each; the sum over shapes of the
stages' running seconds (`record["seconds"]`), and the scheduler's share: workers x flow seconds less
that sum, per shape (time the workers were not running a stage: scheduling, the flow's own work,
idle); the registry's share of a training stage: its seconds less the training itself (the run's
`train/seconds_total`: saving, logging and registering the model through the MLflow server, reading
the samples from the store); the store's small files (objects under the run, their count and bytes);
each worker's largest resident memory and its last.

    python benchmarks/cluster_load.py --shapes 200 --workers 1,2 --out benchmarks/results/cluster_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, write_result  # noqa: E402


TINY = ["--steps", "40", "--resolution", "32", "--set", "sampling.n_surface=4000", "--set", "sampling.n_near=3000",
        "--set", "sampling.n_uniform=2000", "--set", "training.network.width=32", "--set", "training.network.layers=1",
        "--set", "metrics.n_points=5000", "--quiet"]


def make_shapes(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` seeded primitives as OBJ files (a few hundred faces each)."""
    import numpy as np
    import trimesh

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        size = rng.uniform(0.3, 1.0, 3)
        kind = i % 4
        if kind == 0:
            mesh = trimesh.creation.box(extents=size)
        elif kind == 1:
            mesh = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
            mesh.apply_scale(size / size.max())
        elif kind == 2:
            mesh = trimesh.creation.capsule(height=size[0], radius=0.3 * size[1], count=[16, 16])
        else:
            mesh = trimesh.creation.cylinder(radius=0.5 * size[0], height=size[1], sections=24)
        path = folder / f"shape-{i:04d}.obj"
        mesh.export(path)
        paths.append(path)
    return paths


def read_env(path: Path) -> dict:
    variables = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        variables[name] = shlex.split(value)[0]
    return variables


class MemorySampler(threading.Thread):
    """Every worker's resident memory (bytes) once a second: the largest and the last per worker."""

    def __init__(self, address: str):
        super().__init__(daemon=True)
        from distributed import Client

        self.client = Client(address, timeout=60)
        self.largest, self.last, self.stop = {}, {}, threading.Event()

    def run(self):
        import psutil

        while not self.stop.is_set():
            try:
                rss = self.client.run(lambda: psutil.Process().memory_info().rss)
            except Exception:  # noqa: BLE001 - a worker going away between samples
                rss = {}
            for worker, value in rss.items():
                self.largest[worker] = max(self.largest.get(worker, 0), value)
                self.last[worker] = value
            self.stop.wait(1.0)

    def finish(self) -> dict:
        self.stop.set()
        self.join()
        self.client.close()
        return {"largest_mib": sorted(round(v / 2**20) for v in self.largest.values()),
                "last_mib": sorted(round(v / 2**20) for v in self.last.values())}


def measure(workers: int, shapes: list[Path], state: Path, python: str) -> dict:
    bucket = "load"
    up = subprocess.run(["bash", str(ROOT / "scripts" / "cluster-up.sh"), str(state), "--workers", str(workers),
                         "--s3", bucket], capture_output=True, text=True, timeout=300)
    if up.returncode:
        raise RuntimeError(up.stderr)
    try:
        settings = read_env(state / "cluster.env")
        os.environ.update({k: v for k, v in settings.items() if k.startswith(("AWS_", "INRFLOW_STORAGE"))})
        from tasks import locations, registry

        start = time.perf_counter()
        for path in shapes:
            locations.copy_to(path, f"s3://{bucket}/data/{path.name}")
        locations.write_text(f"s3://{bucket}/data/load.yaml", json.dumps(
            {"name": "load", "glob": "*.obj"}))
        upload = time.perf_counter() - start
        sampler = MemorySampler(settings["INRFLOW_DASK_ADDRESS"])
        sampler.start()
        env = {**os.environ, **settings, "PREFECT_HOME": str(state / "prefect-home")}
        env.pop("PREFECT_API_URL", None)
        start = time.perf_counter()
        run = subprocess.run([str(Path(python).with_name("inr")), "run", f"s3://{bucket}/data/load.yaml", "--out",
                              f"s3://{bucket}/run", "--dask-address", settings["INRFLOW_DASK_ADDRESS"],
                              "--tracking-uri", settings["INRFLOW_TRACKING_URI"], *TINY],
                             capture_output=True, text=True, env=env, cwd=state)
        wall = time.perf_counter() - start
        memory = sampler.finish()
        if run.returncode not in (0, 1):
            raise RuntimeError(run.stderr[-3000:])
        summary = locations.read_json(f"s3://{bucket}/run/summary.json")
        records = summary["shapes"]
        ok = [r for r in records if r["status"] == "ok"]
        if not ok:
            raise RuntimeError(f"no shape finished: {sorted({r['error'] for r in records})[:3]}")
        flow_seconds = float(summary.get("seconds") or wall)
        stage_sum = sum(sum(r["seconds"].values()) for r in records)
        client = registry.client(settings["INRFLOW_TRACKING_URI"])
        registry_share = []
        for r in ok:
            training = client.get_run(r["mlflow_run_id"]).data.metrics.get("train/seconds_total")
            if training is not None:
                registry_share.append(r["seconds"]["train"] - training)
        fs, path = locations.filesystem(f"s3://{bucket}/run")
        objects = fs.find(path, detail=True)
        started = time.perf_counter()
        client.search_model_versions("name='load-shape-0000'")
        lookup = time.perf_counter() - started
        return {
            "workers": workers, "shapes": len(records), "ok": len(ok), "failed": len(records) - len(ok),
            "upload_seconds": round(upload, 1), "command_seconds": round(wall, 1), "flow_seconds": round(flow_seconds, 1),
            "shapes_per_minute_command": round(60 * len(ok) / wall, 2),
            "shapes_per_minute_flow": round(60 * len(ok) / flow_seconds, 2),
            "stage_seconds_per_shape": {stage: round(statistics.mean(r["seconds"].get(stage, 0.0) for r in ok), 3)
                                        for stage in ("prepare", "train", "evaluate", "extract")},
            "waiting_seconds_per_shape": round(statistics.mean(sum(r["waiting"].values()) for r in ok), 3),
            "scheduler_seconds_per_shape": round((workers * flow_seconds - stage_sum) / len(records), 3),
            "registry_seconds_per_shape": round(statistics.median(registry_share), 3) if registry_share else None,
            "registry_lookup_seconds": round(lookup, 3),
            "store_objects": len(objects), "store_bytes": sum(d["size"] for d in objects.values()),
            "objects_per_shape": round(len(objects) / len(records), 1),
            "worker_memory": memory,
            "errors": sorted({r["error"] for r in records if r["error"]})[:5],
        }
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "cluster-down.sh"), str(state)], capture_output=True,
                       timeout=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/cluster_load.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="inrflow-load-") as folder:
        shapes = make_shapes(Path(folder), args.shapes, args.seed)
        for workers in [int(w) for w in args.workers.split(",")]:
            state = Path(folder) / f"cluster-{workers}"
            rows.append(measure(workers, shapes, state, sys.executable))
            print(json.dumps(rows[-1]), flush=True)
            write_result(args.out, "cluster_load", argv, {"cpu_model": cpu_model(), "rows": rows}, quiet=True)
    base = rows[0]["shapes_per_minute_flow"]
    for row in rows:
        row["speedup_flow"] = round(row["shapes_per_minute_flow"] / base, 2)
    write_result(args.out, "cluster_load", argv, {"cpu_model": cpu_model(), "settings": TINY, "rows": rows})


if __name__ == "__main__":
    main()
