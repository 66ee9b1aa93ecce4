"""Benchmark: how tight affine and interval range bounds are on fitted fields.

For each field (.safetensors weights) draws boxes centred on the fitted surface (points of the
field's zero level set found on a coarse grid) and off it, of several half-widths h, and records
per mode the median bound width, the median ratio of the affine width to the interval width, and
the fraction of off-surface boxes certified (sign known), plus the seconds per 1000 boxes. The
true range over a box is at least the sampled range, recorded as the reference. Writes one JSON file.

    python benchmarks/range_tightness.py --field siren=benchmarks/fields/bunny-siren.safetensors \\
        --field relu=benchmarks/fields/bunny-relu.safetensors --threads 2 --out benchmarks/results/range_tightness.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


MODES = [("interval", None), ("affine", 3), ("affine", 8), ("affine", 32), ("affine", None)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", action="append", required=True, metavar="NAME=WEIGHTS")
    parser.add_argument("--half-widths", type=float, nargs="+", default=[0.001, 0.004, 0.016, 0.064])
    parser.add_argument("--boxes", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/range_tightness.json")
    args = parser.parse_args(argv)

    import torch

    from inrcore.fields.evaluation import evaluate_points
    from inrcore.fields.weights import load_field
    from inrcore.queries.bounds import bound_of

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    rows = []
    for item in args.field:
        name, path = item.split("=", 1)
        spec, params, _ = load_field(path)
        # Box centres: uniform points in [-0.9, 0.9]^3 ("any") and the ones nearest the surface ("surface").
        candidates = torch.rand(20 * args.boxes, 3, generator=g) * 1.8 - 0.9
        values = torch.as_tensor(evaluate_points(spec, params, candidates.numpy()))
        near = candidates[values.abs().argsort()[:args.boxes]]
        anywhere = candidates[:args.boxes]
        for where, centres in (("surface", near), ("anywhere", anywhere)):
            for h in args.half_widths:
                axes = torch.eye(3).expand(len(centres), 3, 3) * h
                t = torch.rand(len(centres), 64, 3, generator=g) * 2 - 1
                samples = centres[:, None] + h * t
                sampled = torch.as_tensor(evaluate_points(spec, params, samples.reshape(-1, 3).numpy())).reshape(len(centres), 64)
                sampled_width = (sampled.max(1).values - sampled.min(1).values)
                widths = {}
                for mode, k in MODES:
                    start = time.perf_counter()
                    with torch.no_grad():
                        lo, hi = bound_of(spec, params, centres, axes, mode, k)
                    seconds = time.perf_counter() - start
                    width = (hi - lo)[:, 0]
                    widths[(mode, k)] = width
                    certified = ((lo[:, 0] > 0) | (hi[:, 0] < 0)).float().mean().item()
                    rows.append({"field": name, "centres": where, "half_width": h, "mode": mode, "max_symbols": k,
                                 "median_width": float(width.median()), "median_sampled_width": float(sampled_width.median()),
                                 "certified": certified, "ms_per_1000_boxes": 1000 * seconds * 1000 / len(centres)})
                for mode, k in MODES[1:]:
                    ratio = (widths[(mode, k)] / widths[("interval", None)]).median().item()
                    rows.append({"field": name, "centres": where, "half_width": h, "affine_over_interval": ratio,
                                 "max_symbols": k})
                print(name, where, h, {f"{m}{'' if k is None else k}": round(float(w.median()), 4)
                                       for (m, k), w in widths.items()}, flush=True)
    write_result(args.out, "range_tightness", argv, {"threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
