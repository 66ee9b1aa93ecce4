"""Benchmark: evaluate a SIREN on an R^3 grid into Zarr through the pipeline's task, then mesh it.

Runs `tasks.fields.evaluate_field` on a Dask LocalCluster worker exactly as the flow does
(blocks spread over the workers, written straight into Zarr chunks), records wall time,
points per second and each worker's peak resident memory, then times blockwise marching
cubes over the stored grid. Writes one JSON file.

    python benchmarks/field_grid.py --resolution 512 --out benchmarks/results/field_grid_512.json

The field is a SIREN: the fitted weights given with --weights (a .safetensors file written by
inrflow, e.g. from a run's mlartifacts), else a freshly initialised one of --width x --layers.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--weights", help="a .safetensors field written by inrflow (default: random SIREN)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from distributed import Client, LocalCluster

    from flows.collection import configure_local_workers
    from inrcore.fields.networks import init_siren_params, siren_spec
    from inrcore.fields.weights import load_field
    from inrcore.geometry.marching import marching_cubes_blocks
    from inrcore.geometry.settings import GridConfig
    from tasks import registry
    from tasks.sdf.evaluate import evaluate_field
    from tasks.store import open_store

    if args.weights:
        spec, params, _ = load_field(args.weights)
    else:
        spec = siren_spec(width=args.width, layers=args.layers)
        params = init_siren_params(spec, torch.Generator().manual_seed(0))
    grid = GridConfig(resolution=args.resolution, chunk=args.chunk)

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        experiment = registry.ensure_experiment(uri, "bench", Path(tmp, "artifacts").as_uri())
        run_id = registry.start_run(uri, experiment, "bench", {}, {})
        model_uri, _ = registry.register_field(uri, run_id, "bench-field", "bench", spec, params, {}, "fp")
        store = str(Path(tmp) / "store.zarr")

        configure_local_workers()  # the same worker environment as the pipeline's LocalCluster
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            start = time.perf_counter()
            result = client.submit(evaluate_field.fn, "bench", store, model_uri, "fp", grid, uri,
                                   pure=False).result()
            seconds = time.perf_counter() - start
            worker_peak = client.run(peak_rss_mb)

        root = open_store(store, mode="r")
        sdf = root["fields/bench/sdf"]
        stored_bytes = sum(f.stat().st_size for f in Path(store, "fields", "bench", "sdf").rglob("*") if f.is_file())
        before = peak_rss_mb()
        start = time.perf_counter()
        mesh = marching_cubes_blocks(lambda b: sdf[b], sdf.shape, args.chunk, float(root["fields/bench"].attrs["spacing"]),
                                     tuple(root["fields/bench"].attrs["bounds_min"]))
        mc_seconds = time.perf_counter() - start
        finite = bool(np.isfinite(sdf[:: args.chunk, :: args.chunk, :: args.chunk]).all())

    n_points = args.resolution ** 3
    write_result(args.out, "field_grid", argv, {
        "resolution": args.resolution, "chunk": args.chunk, "blocks": result.blocks,
        "network": {"width": args.width, "layers": args.layers, "weights": args.weights or "random SIREN init"},
        "workers": args.workers,
        "evaluate_seconds": round(seconds, 2),
        "points_per_second": round(n_points / seconds),
        "worker_peak_rss_mb": {k: round(v, 1) for k, v in worker_peak.items()},
        "grid_float32_mb": round(n_points * 4 / 2 ** 20, 1),
        "stored_mb": round(stored_bytes / 2 ** 20, 1),
        "all_values_finite_on_sample": finite,
        "marching_cubes_seconds": round(mc_seconds, 2),
        "marching_cubes_main_peak_rss_mb": round(peak_rss_mb(), 1),
        "main_peak_rss_before_mc_mb": round(before, 1),
        "mesh_vertices": int(len(mesh.vertices)), "mesh_faces": int(len(mesh.faces)),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
