"""Benchmark: SIREN fitted to sparse and to noisy point clouds, with and without iso-points.

For each shape the mesh is normalised into [-0.9, 0.9]^3 (as the pipeline does) and two clouds
are drawn from it with a fixed seed:

  sparse  `--sparse-points` area-weighted surface points with their true normals;
  noisy   `--noisy-points` surface points moved by Gaussian noise of standard deviation
          `--noise` x the bounding-box diagonal, normals estimated from the noisy points
          (`inrcore.geometry.pointclouds.estimate_normals`: PCA of 16 neighbours, spanning-tree orientation);
  outliers the noisy cloud plus `--outliers` x as many points again drawn uniformly in the
          mesh's bounding box grown by 10%, normals estimated from the whole cloud.

Each cloud is sampled as `inr fit` samples a cloud (`sampling.sample_point_cloud`, no distances
off the surface) and fitted for exactly `--steps` steps (so the CPU's speed does not change the
result) with the same seed, once per variant:

  baseline       training.isopoints.enabled = false
  isopoints      iso-points on, normals from the field's gradient
  isopoints-pca  iso-points on, normals estimated from the iso-points' own neighbourhoods
  isopoints-pca-bilateral  as isopoints-pca, and the data points' surface terms weighted by
                 their bilateral agreement with the iso-points (`isopoints.bilateral`); the
                 library's defaults for `training.isopoints`

The field is meshed on a `--resolution`^3 grid and measured against the true mesh
(`inrcore.geometry.metrics.compare_meshes`: Chamfer-L1, F-score at 1% of the diagonal, normal
consistency, Hausdorff; distances in units of the longest bounding-box side). Rows are written to
`--out` after every run, and rows already there with the same settings are reused, so an
interrupted run resumes.

    python benchmarks/isopoints_ablation.py --out benchmarks/results/isopoints_ablation.json
    python benchmarks/isopoints_ablation.py --quick --out /tmp/isopoints_smoke.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"bunny": "datasets/meshes/bunny.obj", "fandisk": "datasets/meshes/fandisk.obj",
          "spot": "datasets/meshes/spot.obj", "rocker-arm": "datasets/meshes/rocker-arm.obj"}
CLOUDS = ("sparse", "noisy", "outliers")
VARIANTS = {"baseline": {"enabled": False},
            "isopoints": {"enabled": True, "normals": "field", "bilateral": False},
            "isopoints-pca": {"enabled": True, "normals": "estimated", "bilateral": False},
            "isopoints-pca-bilateral": {"enabled": True, "normals": "estimated", "bilateral": True}}


def make_cloud(shape: str, cloud: str, args):
    """The normalised mesh and a cloud drawn from it: (mesh, points [P, 3], normals [P, 3], facts)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from inrcore.geometry.meshes import load_mesh, normalise_mesh
    from inrcore.geometry.pointclouds import estimate_normals
    from inrcore.geometry.sampling import sample_surface

    mesh, _ = normalise_mesh(load_mesh(ROOT / SHAPES[shape]), 0.9)
    rng = np.random.default_rng(args.seed)
    if cloud == "sparse":
        points, normals = sample_surface(mesh, args.sparse_points, rng)
        return mesh, points, normals, {"points": args.sparse_points}
    points, true_normals = sample_surface(mesh, args.noisy_points, rng)
    diagonal = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))
    points = points + rng.normal(0.0, args.noise * diagonal, size=points.shape)
    facts = {"points": args.noisy_points, "noise_sigma": args.noise * diagonal}
    if cloud == "outliers":
        count = int(round(args.outliers * len(points)))
        low, high = mesh.bounds[0], mesh.bounds[1]
        margin = 0.05 * (high - low)
        stray = rng.uniform(low - margin, high + margin, size=(count, 3))
        points = np.concatenate([points, stray])
        facts.update(points=len(points), outliers=count)
    normals = estimate_normals(points)
    surface = len(true_normals)
    flipped = float(np.mean(np.einsum("ij,ij->i", normals[:surface], true_normals) < 0))
    return mesh, points, normals, {**facts, "estimated_normals_flipped": round(flipped, 4)}


def run_one(shape: str, cloud: str, variant: str, args) -> dict:
    """Fit one cloud with one variant; its metrics and counts."""
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from inrcore.geometry.metrics import compare_meshes
    from inrcore.geometry.sampling import sample_point_cloud
    from inrcore.geometry.settings import GridConfig, MetricsConfig, SamplingConfig
    from inrcore.sdf.fitshape import field_surface
    from inrcore.sdf.settings import TrainConfig
    from inrcore.sdf.training import fit_sdf
    from inrcore.settings import config_from_dict

    mesh, points, normals, facts = make_cloud(shape, cloud, args)
    samples = sample_point_cloud(points, normals, SamplingConfig(seed=args.seed))
    isopoints = {**VARIANTS[variant], "n_points": args.isopoints, "refresh_every": args.refresh_every,
                 "warmup": args.warmup}
    config = config_from_dict(TrainConfig, {"steps": args.steps, "device": args.device, "seed": args.seed,
                                            "log_every": max(args.steps // 10, 1), "isopoints": isopoints,
                                            "network": {"kind": "siren", "omega_first": args.omega,
                                                        "omega_hidden": args.omega}}, "benchmark")
    n = samples.n_surface
    clock = time.perf_counter()
    fit = fit_sdf(samples.points[:n], samples.normals[:n], samples.points[n:], config, volume_sdf=None)
    train_seconds = time.perf_counter() - clock
    row = {"shape": shape, "cloud": cloud, "variant": variant, **{f"cloud_{k}": v for k, v in facts.items()},
           "steps": fit.steps, "train_seconds": round(train_seconds, 1), "device": fit.device,
           "isopoints": fit.history[-1].get("isopoints", 0),
           "isopoint_refreshes": fit.history[-1].get("isopoint_refreshes", 0)}
    try:
        reconstruction = field_surface(fit.spec, fit.params, GridConfig(resolution=args.resolution), "cpu",
                                       where=f"{shape}/{cloud}/{variant}")
    except Exception as exc:  # an empty level set is a result too
        return {**row, "error": str(exc)}
    metrics = compare_meshes(reconstruction, mesh, MetricsConfig(n_points=args.metric_points, seed=args.seed))
    return {**row, **{k: round(float(v), 5) for k, v in metrics.items()}, "faces": int(len(reconstruction.faces)),
            "components": int(len(reconstruction.split(only_watertight=False)))}


def settings_of(args) -> dict:
    keys = ("steps", "seed", "sparse_points", "noisy_points", "noise", "outliers", "isopoints", "refresh_every", "warmup",
            "resolution", "metric_points", "omega", "device")
    return {k: getattr(args, k) for k in keys}


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| shape | cloud | variant | Chamfer-L1 | F-score | normal consistency | Hausdorff | iso-points "
             "| train s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['cloud']} | {r['variant']} | failed: {r['error'][:60]} | | | | | |")
            continue
        lines.append(f"| {r['shape']} | {r['cloud']} | {r['variant']} | {r['chamfer_l1']:.5f} | {r['fscore']:.3f} "
                     f"| {r['normal_consistency']:.4f} | {r['hausdorff']:.4f} | {r['isopoints']} "
                     f"| {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="bunny", help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--clouds", default=",".join(CLOUDS), help="comma-separated: " + ", ".join(CLOUDS))
    parser.add_argument("--variants", default="baseline,isopoints,isopoints-pca",
                        help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sparse-points", type=int, default=2000)
    parser.add_argument("--noisy-points", type=int, default=20000)
    parser.add_argument("--outliers", type=float, default=0.05, help="outliers as a fraction of the noisy points")
    parser.add_argument("--noise", type=float, default=0.005, help="noise sigma as a fraction of the bbox diagonal")
    parser.add_argument("--isopoints", type=int, default=5000, help="training.isopoints.n_points")
    parser.add_argument("--refresh-every", type=int, default=250)
    parser.add_argument("--warmup", type=float, default=0.25)
    parser.add_argument("--omega", type=float, default=30.0, help="SIREN omega of every sine layer")
    parser.add_argument("--resolution", type=int, default=128, help="grid resolution for meshing")
    parser.add_argument("--metric-points", type=int, default=100_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny fits, coarse grid, few metric points")
    parser.add_argument("--out", required=True, help="the result JSON (rows in it with the same settings are reused)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.resolution, args.metric_points, args.isopoints, args.refresh_every = 40, 48, 5000, 500, 10
        args.noisy_points = min(args.noisy_points, 5000)
    args.shapes = [s for s in args.shapes.split(",") if s]
    args.clouds = [c for c in args.clouds.split(",") if c]
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = (sorted(set(args.shapes) - set(SHAPES)) + sorted(set(args.clouds) - set(CLOUDS))
               + sorted(set(args.variants) - set(VARIANTS)))
    if unknown:
        parser.error(f"unknown shapes, clouds or variants: {unknown}")

    settings = settings_of(args)
    rows: list[dict] = []
    out = Path(args.out)
    if out.is_file():
        previous = json.loads(out.read_text())
        if previous.get("settings") == settings:
            rows = previous.get("runs", [])
    done = {(r["shape"], r["cloud"], r["variant"]) for r in rows}
    for shape in args.shapes:
        for cloud in args.clouds:
            for variant in args.variants:
                if (shape, cloud, variant) in done:
                    continue
                row = run_one(shape, cloud, variant, args)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"benchmark": "isopoints_ablation", "settings": settings, "runs": rows,
                                           "machine": machine()}, indent=2) + "\n")
    order = {(s, c, v): i for i, (s, c, v) in enumerate(
        (s, c, v) for s in SHAPES for c in CLOUDS for v in VARIANTS)}
    rows.sort(key=lambda r: order[(r["shape"], r["cloud"], r["variant"])])
    write_result(args.out, "isopoints_ablation", argv, {"settings": settings, "runs": rows, "table": table(rows)})
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
