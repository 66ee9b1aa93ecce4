"""Benchmark: the SIREN loss alone against the SIREN loss plus the clamped distance term.

Fits one mesh twice with the demo's settings (same samples, same seed), once with
`loss.sdf = 0` and once with the default, in two processes side by side (one torch thread
each, as the pipeline's Dask workers run), evaluates each field on a 128^3 grid, meshes it
and measures it against the input (`inrcore.geometry.metrics.compare_meshes`: point-to-surface figures,
and the point-to-point ones as "<name>_points"). Writes one JSON file, and next to it each
fitted field and mesh as `<out>-sdf<weight>.safetensors` / `.npz` (`common.save_mesh`: exact
float64 vertices in the normalised coordinates they were measured in).

    python benchmarks/sdf_loss_ablation.py --mesh datasets/meshes/bunny.obj --out benchmarks/results/loss_ablation_bunny.json

`--rescore` fits nothing: it measures the saved meshes of `--out`'s runs again with the current
metrics and rewrites `--out` (runs without a saved mesh are left as they are and listed):

    python benchmarks/sdf_loss_ablation.py --rescore --out benchmarks/results/loss_ablation_bunny.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_saved_mesh, metric_figures, save_mesh, write_result  # noqa: E402


def reference_mesh(mesh_path: str):
    """The input mesh normalised as the fits saw it."""
    from inrcore.geometry.meshes import load_mesh, normalise_mesh
    from inrcore.geometry.settings import SamplingConfig

    return normalise_mesh(load_mesh(mesh_path), SamplingConfig().extent)[0]


def fit_and_measure(mesh_path: str, steps: int, sdf_weight: float, resolution: int, stem: str) -> dict:
    """Fit, mesh and measure one loss setting; keeps the field and mesh as `stem`.safetensors / .npz."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from inrcore.fields.evaluation import evaluate_grid_block
    from inrcore.fields.weights import save_field
    from inrcore.files import make_readable
    from inrcore.geometry.grids import grid_blocks, grid_spacing
    from inrcore.geometry.marching import marching_cubes_blocks
    from inrcore.geometry.metrics import METRICS_VERSION, compare_meshes
    from inrcore.geometry.sampling import sample_sdf
    from inrcore.geometry.settings import GridConfig, SamplingConfig
    from inrcore.sdf.settings import TrainConfig
    from inrcore.settings import config_replace, config_to_dict

    mesh = reference_mesh(mesh_path)
    samples = sample_sdf(mesh, SamplingConfig(n_surface=50_000, n_near=40_000, n_uniform=20_000))
    config = config_replace(TrainConfig(steps=steps), {"loss": {"sdf": sdf_weight}})
    n = samples.n_surface
    from inrcore.sdf.training import fit_sdf

    start = time.perf_counter()
    result = fit_sdf(samples.points[:n], samples.normals[:n], samples.points[n:], config, volume_sdf=samples.sdf[n:])
    seconds = time.perf_counter() - start
    grid = GridConfig(resolution=resolution)
    values = np.zeros((resolution,) * 3, np.float32)
    for block in grid_blocks(values.shape, grid.chunk):
        values[block] = evaluate_grid_block(result.spec, result.params, grid, block)
    surface = marching_cubes_blocks(lambda b: values[b], values.shape, grid.chunk, grid_spacing(grid), (-1.0,) * 3)
    metrics = compare_meshes(surface, mesh)
    field_file, mesh_file = Path(stem + ".safetensors"), Path(stem + ".npz")
    save_field(field_file, result.spec, result.params, metadata={
        "mesh": mesh_path, "loss_sdf_weight": sdf_weight, "steps": steps, "resolution": resolution,
        "training": config_to_dict(config)})
    make_readable(field_file)
    save_mesh(mesh_file, surface)
    return {"loss_sdf_weight": sdf_weight, "train_seconds": round(seconds, 1), "steps": result.steps,
            "components": len(surface.split(only_watertight=False)),
            **metric_figures(metrics), "metrics_version": METRICS_VERSION,
            "field": field_file.name, "mesh": mesh_file.name}


def rescore(out: Path) -> dict:
    """Measure the saved meshes of `out`'s runs again and rewrite `out`; {"rescored", "skipped"}."""
    from inrcore.geometry.metrics import METRIC_NAMES, METRICS_VERSION, POINT_METRIC_NAMES, compare_meshes

    report = json.loads(out.read_text())
    reference = reference_mesh(report["mesh"])
    rescored, skipped = [], []
    for run in report["runs"]:
        saved = out.parent / run.get("mesh", "")
        if "mesh" not in run or not saved.is_file():
            skipped.append(run["loss_sdf_weight"])
            continue
        metrics = compare_meshes(load_saved_mesh(saved), reference)
        for key in METRIC_NAMES + POINT_METRIC_NAMES:
            run.pop(key, None)
        run.update(metric_figures(metrics), metrics_version=METRICS_VERSION)
        rescored.append(run["loss_sdf_weight"])
    report["rescore"] = {"command": "python " + " ".join(sys.argv), "rescored": rescored, "skipped": skipped}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report["rescore"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", default="datasets/meshes/bunny.obj")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rescore", action="store_true",
                        help="fit nothing: measure the meshes saved next to --out again and rewrite --out")
    args = parser.parse_args(argv)

    if args.rescore:
        rescore(Path(args.out))
        return 0

    from inrcore.sdf.settings import LossConfig

    weights = [0.0, LossConfig().sdf]
    stems = [str(Path(args.out).with_suffix("")) + f"-sdf{weight:g}" for weight in weights]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(fit_and_measure, [args.mesh] * 2, [args.steps] * 2, weights, [args.resolution] * 2,
                             stems))
    write_result(args.out, "sdf_loss_ablation", argv,
                 {"mesh": args.mesh, "steps": args.steps, "resolution": args.resolution, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
