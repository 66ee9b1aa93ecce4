"""Benchmark: the SIREN loss alone against the SIREN loss plus the clamped distance term.

Fits one mesh twice with the demo's settings (same samples, same seed), once with
`loss.sdf = 0` and once with the default, in two processes side by side (one torch thread
each, as the pipeline's Dask workers run), evaluates each field on a 128^3 grid, meshes it
and measures it against the input. Writes one JSON file.

    python benchmarks/sdf_loss_ablation.py --mesh datasets/meshes/bunny.obj --out benchmarks/results/loss_ablation_bunny.json
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def fit_and_measure(mesh_path: str, steps: int, sdf_weight: float, resolution: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from inrcore.config import GridConfig, SamplingConfig, TrainConfig, config_replace
    from inrcore.fields import evaluate_grid_block, grid_blocks, grid_spacing
    from inrcore.meshes import load_mesh, normalise_mesh
    from inrcore.metrics import compare_meshes
    from inrcore.sampling import sample_sdf
    from inrcore.surface import marching_cubes_blocks

    mesh, _ = normalise_mesh(load_mesh(mesh_path), SamplingConfig().extent)
    samples = sample_sdf(mesh, SamplingConfig(n_surface=50_000, n_near=40_000, n_uniform=20_000))
    config = config_replace(TrainConfig(steps=steps), {"loss": {"sdf": sdf_weight}})
    n = samples.n_surface
    from inrcore.training import fit_sdf

    start = time.perf_counter()
    result = fit_sdf(samples.points[:n], samples.normals[:n], samples.points[n:], config, volume_sdf=samples.sdf[n:])
    seconds = time.perf_counter() - start
    grid = GridConfig(resolution=resolution)
    values = np.zeros((resolution,) * 3, np.float32)
    for block in grid_blocks(values.shape, grid.chunk):
        values[block] = evaluate_grid_block(result.spec, result.params, grid, block)
    surface = marching_cubes_blocks(lambda b: values[b], values.shape, grid.chunk, grid_spacing(grid), (-1.0,) * 3)
    metrics = compare_meshes(surface, mesh)
    return {"loss_sdf_weight": sdf_weight, "train_seconds": round(seconds, 1), "steps": result.steps,
            "components": len(surface.split(only_watertight=False)),
            **{k: round(v, 5) for k, v in metrics.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", default="datasets/meshes/bunny.obj")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from inrcore.config import LossConfig

    weights = [0.0, LossConfig().sdf]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(fit_and_measure, [args.mesh] * 2, [args.steps] * 2, weights, [args.resolution] * 2))
    write_result(args.out, "sdf_loss_ablation", argv,
                 {"mesh": args.mesh, "steps": args.steps, "resolution": args.resolution, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
