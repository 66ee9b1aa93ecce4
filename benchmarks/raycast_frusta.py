"""Benchmark: range-bound ray casting of a fitted SIREN per ray against by frusta, and sphere tracing.

A SIREN (3 sine layers of 64 by default) is fitted to datasets/meshes/bunny.obj for a fixed
number of steps (the weights are cached in --cache, so reruns skip training), then depth and
normal images are rendered with `inrcore.queries.frusta.render_field` by each method: "ray"
(range-bound casting of every pixel), "frusta" (tiles of pixels certified together, split down
to pixels, 16 x 16 initial tiles) and "sphere" (sphere tracing: not guaranteed for a fitted
SIREN, which is only roughly a distance field, and indeed it passes through the surface in
places). The camera is orthographic, framed on the cube [-0.7, 0.7]^3 (--frame; the bunny
fills the view), and the field is searched in [-1, 1]^3. Range bounds are affine with at most
16 symbols kept (--max-symbols; 0 keeps all, about 3x slower per step here).

Reported per image size and method: steps (bound evaluations; field evaluations for sphere
tracing), seconds of casting, hits; the agreement of frusta and sphere tracing with per-ray
casting (fraction of pixels with the same hit status, largest and 99th-percentile depth
difference where both hit); and per size the ratios ray / frusta of steps and seconds. Images
larger than --full-ray-up-to (256) cast per ray only every --ray-stride-th (4th) row and
column and scale steps and seconds to the whole image (marked "estimated_from_every").
Sharp & Jacobson 2022 report 6.72 s and 65.1M steps per ray against 1.59 s and 8.18M steps by
frusta (a GPU, their networks, 1024^2 images). Frusta pay off once a tile of several pixels
is narrower than the boxes the bounds can certify (about 0.02-0.03 wide for this SIREN): at
128^2 (0.019 per pixel) they barely help; the gain grows with the resolution.

Full run (128^2 and 256^2; about 6-10 minutes on 2 idle CPU cores, training included; use
--threads 1 on a busy machine, where 2 threads contend badly):

    python benchmarks/raycast_frusta.py --out benchmarks/results/raycast_frusta.json

Higher resolution (frusta in full, per ray on a 1/16 sample; several more minutes):

    python benchmarks/raycast_frusta.py --sizes 512 --out benchmarks/results/raycast_frusta_512.json

Smoke run:

    python benchmarks/raycast_frusta.py --sizes 64 --out /tmp/raycast_smoke.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fitted_field(args):
    """The cached SIREN for these settings, fitted (and cached) if missing: (spec, params, info)."""
    import torch

    from inrcore.fields.weights import load_field, save_field
    from inrcore.geometry.sampling import known_distances
    from inrcore.sdf.fitshape import load_shape_input
    from inrcore.sdf.methods import method_overrides
    from inrcore.sdf.settings import PipelineConfig
    from inrcore.sdf.training import fit_sdf
    from inrcore.settings import config_replace

    key = f"{Path(args.mesh).stem}-siren{args.width}x{args.layers}-{args.train_steps}steps-seed{args.seed}"
    cache = Path(args.cache) / f"raycast-{key}.safetensors"
    if cache.is_file():
        spec, params, meta = load_field(cache)
        return spec, params, {"weights": str(cache), "cached": True, **meta}
    overrides = method_overrides("siren", {"training": {
        "steps": args.train_steps, "device": args.device, "log_every": 10**9, "seed": args.seed,
        "network": {"width": args.width, "layers": args.layers}}})
    config = config_replace(PipelineConfig(), overrides, "benchmark")
    clock = time.perf_counter()
    shape = load_shape_input(str(ROOT / args.mesh), config.sampling)
    samples, n = shape.samples, shape.samples.n_surface
    fit = fit_sdf(samples.points[:n], samples.normals[:n], samples.points[n:], config.training,
                  volume_sdf=known_distances(samples.sdf[n:]))
    meta = {"mesh": args.mesh, "width": args.width, "layers": args.layers, "train_steps": fit.steps,
            "train_seconds": round(time.perf_counter() - clock, 1)}
    save_field(cache, fit.spec, fit.params, metadata=meta)
    return fit.spec, {k: v.to(torch.float32) for k, v in fit.params.items()}, {"weights": str(cache), "cached": False,
                                                                              **meta}


def agreement(reference, other) -> dict:
    """Same-hit fraction and depth differences (where both hit) of `other` against `reference`."""
    import torch

    both = reference.hit & other.hit
    diff = (reference.depth[both] - other.depth[both]).abs()
    return {"same_hit_fraction": round(float((reference.hit == other.hit).float().mean()), 6),
            "hit_only_here": int((other.hit & ~reference.hit).sum()),
            "hit_only_in_ray": int((reference.hit & ~other.hit).sum()),
            "max_depth_difference": float(diff.max()) if len(diff) else 0.0,
            "p99_depth_difference": float(torch.quantile(diff.double(), 0.99)) if len(diff) else 0.0}


def strided_ray_row(spec, params, camera, options, stride: int, frusta) -> dict:
    """Per-ray casting of every `stride`-th row and column; steps and seconds scaled to the image."""
    import torch

    from inrcore.queries.raycast import cast_rays

    device, dtype = next(iter(params.values())).device, next(iter(params.values())).dtype
    height, width = camera.size
    origins, directions = camera.rays(device, dtype)
    pixels = (torch.arange(0, height, stride, device=device)[:, None] * width
              + torch.arange(0, width, stride, device=device)[None, :]).reshape(-1)
    clock = time.perf_counter()
    cast = cast_rays(spec, params, origins[pixels], directions[pixels], 1.0, options)
    seconds = time.perf_counter() - clock
    scale = height * width / len(pixels)
    row = {"method": "ray", "estimated_from_every": f"{stride}th row and column", "sampled_pixels": len(pixels),
           "sampled_steps": int(cast.steps.sum()), "sampled_seconds": round(seconds, 3),
           "steps": int(round(int(cast.steps.sum()) * scale)), "seconds": round(seconds * scale, 3),
           "sampled_hits": int(cast.hit.sum()), "unfinished": int(cast.unfinished.sum())}
    if frusta is not None:
        hit, depth = frusta.hit.reshape(-1)[pixels], frusta.depth.reshape(-1)[pixels]
        both = hit & cast.hit
        diff = (depth[both] - cast.t[both]).abs()
        row["frusta_against_sampled_ray"] = {
            "same_hit_fraction": round(float((hit == cast.hit).float().mean()), 6),
            "max_depth_difference": float(diff.max()) if len(diff) else 0.0}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", default="datasets/meshes/bunny.obj")
    parser.add_argument("--width", type=int, default=64, help="SIREN hidden width")
    parser.add_argument("--layers", type=int, default=2, help="SIREN hidden layers")
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="128,256", help="comma-separated square image sizes")
    parser.add_argument("--full-ray-up-to", type=int, default=256,
                        help="larger images cast per ray only every --ray-stride-th row and column, "
                             "and report steps and seconds scaled up to the whole image (estimated)")
    parser.add_argument("--ray-stride", type=int, default=4)
    parser.add_argument("--methods", default="ray,frusta,sphere")
    parser.add_argument("--mode", default="affine", help="affine or interval range bounds")
    parser.add_argument("--max-symbols", type=int, default=16,
                        help="affine symbols kept per value (0: all, exact affine arithmetic; slower)")
    parser.add_argument("--tiles-per-side", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=1024, help="boxes per bound evaluation")
    parser.add_argument("--azimuth", type=float, default=35.0)
    parser.add_argument("--elevation", type=float, default=25.0)
    parser.add_argument("--frame", type=float, default=0.7,
                        help="the view holds the cube [-frame, frame]^3 (as render.pixel_rays' bound); "
                             "the field is searched in [-1, 1]^3")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "inrflow-benchmarks"),
                        help="folder for the fitted weights")
    parser.add_argument("--png-dir", default=None, help="write depth and normal pictures here")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from inrcore.device import resolve_device
    from inrcore.queries.frusta import orthographic_camera, render_field, write_render
    from inrcore.queries.settings import CastOptions

    device = resolve_device(args.device)
    spec, params, field_info = fitted_field(args)
    params = {k: v.to(device) for k, v in params.items()}
    max_symbols = args.max_symbols or None
    options = CastOptions(mode=args.mode, max_symbols=max_symbols, tiles_per_side=args.tiles_per_side,
                          batch_size=args.batch_size)
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        camera = orthographic_camera((size, size), args.azimuth, args.elevation, bound=args.frame)
        stride = args.ray_stride if size > args.full_ray_up_to else 1
        renders = {}
        # per-ray first when it covers every pixel (the others are compared with it), else last
        for method in sorted(methods, key=lambda m: (m == "ray") == (stride > 1)):
            if method == "ray" and stride > 1:
                row = strided_ray_row(spec, params, camera, options, stride, renders.get("frusta"))
            else:
                result = render_field(spec, params, camera, method, bound=1.0, options=options)
                renders[method] = result
                row = {**{k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.stats.items()}}
                if method != "ray" and "ray" in renders:
                    row["against_ray"] = agreement(renders["ray"], result)
                if args.png_dir:
                    write_render(result, Path(args.png_dir) / f"raycast-{size}-{method}")
            row.update(size=size, steps_per_pixel=round(row["steps"] / size**2, 2))
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for size in sorted({r["size"] for r in rows}):
        by = {r["method"]: r for r in rows if r["size"] == size}
        if "ray" in by and "frusta" in by:
            agree = by["frusta"].get("against_ray") or by["ray"].get("frusta_against_sampled_ray", {})
            summary[str(size)] = {
                "steps_ratio_ray_over_frusta": round(by["ray"]["steps"] / max(by["frusta"]["steps"], 1), 2),
                "time_ratio_ray_over_frusta": round(by["ray"]["seconds"] / max(by["frusta"]["seconds"], 1e-9), 2),
                "ray_estimated_from_sample": "estimated_from_every" in by["ray"],
                "frusta_same_hit_fraction": agree.get("same_hit_fraction")}
    write_result(args.out, "raycast_frusta", argv, {
        "field": field_info, "options": {"mode": args.mode, "max_symbols": max_symbols,
                                         "tiles_per_side": args.tiles_per_side, "batch_size": args.batch_size,
                                         "tolerance": options.tolerance},
        "camera": {"kind": "orthographic", "azimuth": args.azimuth, "elevation": args.elevation, "frame": args.frame,
                   "search_bound": 1.0},
        "threads": args.threads, "rows": rows, "summary": summary,
        "reference": {"paper_ray": {"seconds": 6.72, "steps": 65.1e6},
                      "paper_frusta": {"seconds": 1.59, "steps": 8.18e6}}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
