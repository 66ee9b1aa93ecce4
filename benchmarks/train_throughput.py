"""Benchmark: training throughput, shape by shape (`fit_sdf`) against stacked-weight batches
(`inrcore.sdf.batched.fit_sdf_batch`), in shape-steps per second on one device.

Shape by shape is measured once on --baseline-shapes shapes (its rate does not depend on
how many shapes a collection has); each batch size in --sizes is measured on that many
shapes trained together. Every fit uses the same TrainConfig: by default the pipeline's
(SIREN 3 x 128, 2048 + 2048 + 2048 points a step). Writes one JSON file.

    python benchmarks/train_throughput.py --device cpu --steps 20 --sizes 1,4
    python benchmarks/train_throughput.py --device cuda --steps 200 --sizes 1,4,8,16 \\
        --out benchmarks/results/train_throughput_cuda.json

The shapes are analytic by default (spheres and tori of different sizes and positions, with
exact normals and signed distances), so the script needs torch, numpy and scipy only.
--meshes samples the given mesh files with `inrcore.geometry.sampling` instead (needs libigl and
trimesh; without them it says so and uses the analytic shapes).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
import types
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import write_result  # noqa: E402


MESH_LIBRARIES = ("igl", "trimesh")


def placeholder_module(name: str) -> types.ModuleType:
    """A stand-in for a missing library: importing it works, using anything of it raises AttributeError."""
    module = types.ModuleType(name)

    def missing(attribute: str):
        raise AttributeError(f"{name} is not installed here (asked for {name}.{attribute})")

    module.__getattr__ = missing
    return module


def allow_training_without_mesh_libraries() -> list[str]:
    """`inrcore.sdf.training` imports `inrcore.geometry.sampling`, which imports libigl and trimesh for
    sampling meshes; training never calls them. Register stand-ins for the missing ones (a
    bare GPU image may have neither) and return their names."""
    missing = []
    for name in MESH_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = placeholder_module(name)
            missing.append(name)
    return missing


def unit_vectors(rng, n: int):
    """n directions uniform on the sphere: [n, 3]."""
    import numpy as np

    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def sphere_sdf(points, centre, radius):
    """Exact signed distance to a sphere: [N, 3] -> [N]."""
    import numpy as np

    return np.linalg.norm(points - centre, axis=1) - radius


def torus_sdf(points, centre, major: float, minor: float):
    """Exact signed distance to a torus around the z axis: [N, 3] -> [N]."""
    import numpy as np

    p = points - centre
    ring = np.linalg.norm(p[:, :2], axis=1) - major
    return np.hypot(ring, p[:, 2]) - minor


def sphere_surface(rng, n: int, centre, radius: float):
    """Uniform points on a sphere and their outward normals: [n, 3], [n, 3]."""
    normals = unit_vectors(rng, n)
    return centre + radius * normals, normals


def torus_surface(rng, n: int, centre, major: float, minor: float):
    """Area-uniform points on a torus around the z axis (rejection on the tube angle) and their normals."""
    import numpy as np

    u, v = np.empty(0), np.empty(0)
    while len(u) < n:
        cu, cv = rng.uniform(0, 2 * np.pi, 2 * n), rng.uniform(0, 2 * np.pi, 2 * n)
        keep = rng.uniform(0, major + minor, 2 * n) < major + minor * np.cos(cv)
        u, v = np.concatenate([u, cu[keep]]), np.concatenate([v, cv[keep]])
    u, v = u[:n], v[:n]
    normals = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], axis=1)
    ring = np.stack([major * np.cos(u), major * np.sin(u), np.zeros(n)], axis=1)
    return centre + ring + minor * normals, normals


def analytic_shape(index: int, n_surface: int, n_near: int, n_uniform: int, seed: int = 0):
    """Shape `index`: spheres and tori in turn, each of its own size and position.

    Returns (surface_points [S, 3], surface_normals [S, 3], volume_points [V, 3], volume_sdf [V])
    with V = n_near (surface points moved by N(0, 0.01^2) and N(0, 0.1^2), half each) + n_uniform.
    """
    import numpy as np

    rng = np.random.default_rng(seed + index)
    centre = rng.uniform(-0.15, 0.15, 3)
    if index % 2 == 0:
        radius = rng.uniform(0.3, 0.6)
        surface, normals = sphere_surface(rng, n_surface, centre, radius)
        distance = lambda p: sphere_sdf(p, centre, radius)  # noqa: E731
    else:
        major, minor = rng.uniform(0.4, 0.55), rng.uniform(0.1, 0.2)
        surface, normals = torus_surface(rng, n_surface, centre, major, minor)
        distance = lambda p: torus_sdf(p, centre, major, minor)  # noqa: E731
    pick = rng.integers(n_surface, size=n_near)
    sigma = np.where(np.arange(n_near) < n_near // 2, 0.01, 0.1)[:, None]
    near = surface[pick] + rng.normal(size=(n_near, 3)) * sigma
    volume = np.concatenate([near, rng.uniform(-1.0, 1.0, (n_uniform, 3))])
    return surface, normals, volume, distance(volume)


def mesh_shapes(paths: list[str], count: int):
    """`count` shapes sampled from the mesh files (cycling through them) with `inrcore.geometry.sampling`."""
    from inrcore.geometry.meshes import load_mesh, normalise_mesh
    from inrcore.geometry.sampling import sample_sdf
    from inrcore.geometry.settings import SamplingConfig

    shapes = []
    for index in range(count):
        mesh, _ = normalise_mesh(load_mesh(paths[index % len(paths)]), SamplingConfig().extent)
        samples = sample_sdf(mesh, SamplingConfig(seed=index))
        n = samples.n_surface
        shapes.append((samples.points[:n], samples.normals[:n], samples.points[n:], samples.sdf[n:]))
    return shapes


def shapes_for(count: int, meshes: list[str], missing_libraries: list[str]):
    """`count` shapes: from `meshes` when given and the mesh libraries are here, else analytic ones.

    Returns (shapes, description)."""
    if meshes and not missing_libraries:
        return mesh_shapes(meshes, count), f"meshes {', '.join(meshes)}"
    if meshes:
        print(f"--meshes needs {' and '.join(missing_libraries)}, missing here; using analytic shapes",
              file=sys.stderr)
    from inrcore.geometry.settings import SamplingConfig

    sampling = SamplingConfig()
    return ([analytic_shape(i, sampling.n_surface, sampling.n_near, sampling.n_uniform) for i in range(count)],
            "analytic spheres and tori")


def synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_one_by_one(shapes, config) -> dict:
    """Fit each shape alone with `fit_sdf`: wall seconds (set-up included) and training-loop seconds."""
    from inrcore.device import resolve_device
    from inrcore.sdf.training import fit_sdf

    device = resolve_device(config.device)
    synchronise(device)
    start = time.perf_counter()
    loop = 0.0
    for surface, normals, volume, sdf in shapes:
        loop += fit_sdf(surface, normals, volume, config, volume_sdf=sdf).seconds
    synchronise(device)
    wall = time.perf_counter() - start
    shape_steps = len(shapes) * config.steps
    return {"shapes": len(shapes), "wall_seconds": round(wall, 3), "loop_seconds": round(loop, 3),
            "shape_steps_per_second": round(shape_steps / wall, 2),
            "loop_shape_steps_per_second": round(shape_steps / loop, 2)}


def time_batched(shapes, config) -> dict:
    """Fit the shapes together with `fit_sdf_batch`: wall and loop seconds, peak GPU memory."""
    import torch

    from inrcore.device import resolve_device
    from inrcore.sdf.batched import fit_sdf_batch

    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronise(device)
    start = time.perf_counter()
    results = fit_sdf_batch(shapes, config)
    synchronise(device)
    wall = time.perf_counter() - start
    shape_steps = len(shapes) * results[0].steps
    report = {"shapes": len(shapes), "wall_seconds": round(wall, 3), "loop_seconds": round(results[0].seconds, 3),
              "shape_steps_per_second": round(shape_steps / wall, 2),
              "loop_shape_steps_per_second": round(shape_steps / results[0].seconds, 2),
              "final_loss_mean": round(sum(r.history[-1]["loss"] for r in results) / len(results), 4)}
    if device.type == "cuda":
        report["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        try:  # what `shapes_per_batch: auto` counts for these shapes, beside what CUDA allocated
            from inrcore.sdf.batched import shape_step_bytes

            surface, _, volume, _ = shapes[0]
            report["counted_memory_mib"] = round(len(shapes) * shape_step_bytes(config, len(surface), len(volume))
                                                 / 2**20, 1)
        except ImportError:  # a version without the count
            pass
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4,8,16", help="batch sizes to measure, comma-separated")
    parser.add_argument("--steps", type=int, default=200, help="training steps of every fit")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--kind", default="siren", choices=["siren", "igr", "relu-pe", "idf"])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-points", type=int, default=None,
                        help="points of each kind per step (surface, off-surface, uniform); default the pipeline's")
    parser.add_argument("--baseline-shapes", type=int, default=2, help="shapes fitted one by one for the baseline")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    parser.add_argument("--meshes", nargs="*", default=[], help="mesh files to sample instead of analytic shapes")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json", help="JSON file to write")
    args = parser.parse_args(argv)

    stand_ins = allow_training_without_mesh_libraries()
    import torch

    from inrcore.device import resolve_device
    from inrcore.fields.settings import NetworkConfig
    from inrcore.sdf.settings import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    points = {} if args.batch_points is None else {
        "batch_surface": args.batch_points, "batch_offsurface": args.batch_points, "batch_uniform": args.batch_points}
    config = TrainConfig(steps=args.steps, device=args.device, log_every=max(args.steps, 1),
                         network=NetworkConfig(kind=args.kind, width=args.width, layers=args.layers), **points)
    device = resolve_device(config.device)
    shapes, source = shapes_for(max(sizes + [args.baseline_shapes]), args.meshes, stand_ins)

    # Warm-up: first use of the device, kernels, allocator.
    warm = dataclasses.replace(config, steps=3)
    time_one_by_one(shapes[:1], warm)
    time_batched(shapes[:max(sizes)], warm)

    baseline = time_one_by_one(shapes[:args.baseline_shapes], config)
    print(f"one by one: {baseline['shape_steps_per_second']} shape-steps/s", file=sys.stderr)
    batched = []
    for size in sizes:
        run = time_batched(shapes[:size], config)
        run["speedup"] = round(run["shape_steps_per_second"] / baseline["shape_steps_per_second"], 2)
        batched.append(run)
        print(f"batch of {size}: {run['shape_steps_per_second']} shape-steps/s (x{run['speedup']})", file=sys.stderr)

    write_result(args.out, "train_throughput", argv, {
        "device": str(device), "torch_threads": torch.get_num_threads(), "shapes": source,
        "stand_ins_for": stand_ins, "steps": args.steps,
        "network": {"kind": args.kind, "width": args.width, "layers": args.layers},
        "points_per_step": {"surface": config.batch_surface, "offsurface": config.batch_offsurface,
                            "uniform": config.batch_uniform},
        "one_by_one": baseline, "batched": batched,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
