"""PSNR against training time for radiance fields on a scene rendered from a mesh.

Each run: render the mesh into a Blender-format scene (`inrcore.nerf.meshscenes`, 100 training and
20 test views of SIZE x SIZE), train one model for a wall-time budget, measuring PSNR/SSIM on
`--curve-views` test views every `--eval-every` steps (the training clock pauses for these),
then on all test views at the end. Runs are written to the JSON file as they finish.

    python benchmarks/nerf_psnr.py --run ngp:100:600 --run ngp:200:600 --out benchmarks/results/nerf_psnr.json
    python benchmarks/nerf_psnr.py --run nerf:100:300 --run nerf-nope:100:300 --run nerf-noview:100:300 ...

RUN is MODEL:SIZE:SECONDS[:STEPS] with MODEL one of ngp, ngp-noview (no view dependence), nerf,
nerf-nope (no positional encoding), nerf-noview (no view dependence); STEPS, when given, also
stops the run after that many steps (so that ablations compare at equal steps whatever the load). NeRF runs use the paper's network (8 x 256, skip at 4,
10/4 frequencies) with fewer samples and rays per step than the paper so that a CPU step
takes about a second (--nerf-rays, --nerf-samples).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import write_result  # noqa: E402
from inrcore.device import resolve_device
from inrcore.nerf.meshscenes import scene_from_mesh
from inrcore.nerf.pictures import evaluate_views
from inrcore.nerf.raybatches import in_memory_ray_batches
from inrcore.nerf.scenes import load_scene_split
from inrcore.nerf.settings import MeshSceneConfig, NerfConfig
from inrcore.nerf.training import train_radiance_field


def model_settings(name: str, args) -> dict:
    if name == "ngp":
        return {"model": "ngp", "batch_rays": args.ngp_rays}
    if name == "ngp-noview":
        return {"model": "ngp", "batch_rays": args.ngp_rays, "view_dependent": False}
    nerf = {"model": "nerf", "batch_rays": args.nerf_rays, "n_coarse": args.nerf_samples[0],
            "n_fine": args.nerf_samples[1], "depth": args.nerf_size[0], "width": args.nerf_size[1],
            "skip": args.nerf_size[0] // 2}
    if name == "nerf":
        return nerf
    if name == "nerf-nope":
        return {**nerf, "positional_encoding": False}
    if name == "nerf-noview":
        return {**nerf, "view_dependent": False}
    raise SystemExit(f"unknown model {name!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", default="datasets/meshes/spot.obj")
    parser.add_argument("--run", action="append", required=True, metavar="MODEL:SIZE:SECONDS[:STEPS]")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between curve points")
    parser.add_argument("--curve-views", type=int, default=4)
    parser.add_argument("--ngp-rays", type=int, default=1024)
    parser.add_argument("--nerf-rays", type=int, default=512)
    parser.add_argument("--nerf-samples", type=int, nargs=2, default=(32, 64), metavar=("COARSE", "FINE"))
    parser.add_argument("--nerf-size", type=int, nargs=2, default=(8, 256), metavar=("DEPTH", "WIDTH"),
                        help="the NeRF MLP (default the paper's 8 x 256; the skip sits at DEPTH / 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="benchmarks/results/nerf_psnr.json")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device("auto")
    runs = []
    scenes: dict[int, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.run:
            try:
                name, size, seconds, *steps = spec.split(":")
                size, seconds = int(size), float(seconds)
                max_steps = int(steps[0]) if steps else 10**9
            except ValueError:
                parser.error(f"--run {spec!r}: expected MODEL:SIZE:SECONDS[:STEPS], e.g. ngp:100:600 or nerf:100:1e5:2000")
            if size not in scenes:
                start = time.perf_counter()
                scenes[size] = scene_from_mesh(args.mesh, Path(tmp) / f"scene{size}", MeshSceneConfig(size=size))
                print(f"scene {size}x{size}: {time.perf_counter() - start:.1f}s", flush=True)
            train = load_scene_split(scenes[size], "train")
            test = load_scene_split(scenes[size], "test")
            config = NerfConfig(steps=max_steps, seconds=seconds, eval_every=args.eval_every, seed=args.seed,
                                eval_views=args.curve_views, checkpoint_every=10**9, **model_settings(name, args))
            batches = in_memory_ray_batches(train, config.batch_rays, seed=0)
            curve = []

            def on_eval(step, metrics, images, curve=curve):
                curve.append({"step": step, "seconds": round(metrics["seconds"], 1),
                              "psnr": round(metrics["psnr"], 3), "ssim": round(metrics["ssim"], 4)})
                print(f"{spec}: step {step} {metrics['seconds']:.0f}s PSNR {metrics['psnr']:.2f} "
                      f"SSIM {metrics['ssim']:.3f}", flush=True)

            start = time.perf_counter()
            result = train_radiance_field(config, batches, train.near, train.far, device, test=test,
                                          on_eval=on_eval, log_every=10**9)
            wall = time.perf_counter() - start
            final, _ = evaluate_views(result.renderer, test, None, config.chunk_rays)
            run = {"run": spec, "model": name, "size": size, "budget_seconds": seconds,
                   "budget_steps": max_steps if steps else None,
                   "train_seconds": round(result.seconds, 1), "wall_seconds_with_evals": round(wall, 1),
                   "steps": result.steps, "test_views": len(test.images), "psnr": round(final["psnr"], 3),
                   "ssim": round(final["ssim"], 4), "curve": curve,
                   "first_curve_point_at_24db": next((c for c in curve if c["psnr"] >= 24.0), None),
                   "settings": {k: v for k, v in model_settings(name, args).items()}}
            runs.append(run)
            print(f"{spec}: final PSNR {final['psnr']:.2f} SSIM {final['ssim']:.3f} after {result.steps} steps "
                  f"({result.seconds:.0f}s training)", flush=True)
            write_result(args.out, "nerf_psnr", argv, {"mesh": args.mesh, "device": str(device),
                                                       "threads": torch.get_num_threads(), "runs": runs},
                         quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
