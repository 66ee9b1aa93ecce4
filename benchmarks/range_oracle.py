"""Benchmark: how much range-bound meshing could save on a field, and what its bounds achieve.

For each fitted field (a .safetensors weights file):

1. **Predicted plans.** `inrcore.queries.rangemesh.estimate_range_mesh` for each LEAF:MODE:K setting at
   the given resolution: the share of sampled boxes certified per level, the predicted boxes,
   leaves and cost, and the measured cost of one box bound in point evaluations.
2. **Sampled-range oracle.** The field sampled on a (2 * blocks + 1)^3 grid, every leaf block of
   the given resolution and leaf holding 3^3 samples. Each box of the subdivision gets as its
   "bound" its sampled range widened `factor` times about its middle (factor 1 is the sampled
   range itself, a lower bound of the true one); the subdivision then runs as `plan_range_mesh`
   would, and the boxes and leaves it needs are counted. This says how much a bound that is
   `factor` times looser than the field's own variation would save, whatever the arithmetic.

    python benchmarks/range_oracle.py --field siren=benchmarks/fields/bunny-siren.safetensors \\
        --field relu=benchmarks/fields/bunny-relu.safetensors --resolution 512 --leaf 4 \\
        --settings 4:affine:8 4:affine:all --threads 2 --out benchmarks/results/range_oracle.json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def sampled_grid(spec, params, n: int, bound: float = 1.0):
    """Field values on an n^3 grid spanning [-bound, bound]^3, slab by slab: float32 [n, n, n]."""
    import numpy as np

    from inrcore.fields.evaluation import evaluate_points

    axis = np.linspace(-bound, bound, n, dtype=np.float32)
    values = np.empty((n, n, n), np.float32)
    for i in range(n):
        slab = np.stack(np.meshgrid(axis[i:i + 1], axis, axis, indexing="ij"), -1).reshape(-1, 3)
        values[i] = evaluate_points(spec, params, slab).reshape(n, n)
    return values


def _pool(values, reduce, window: int, stride: int):
    count = (values.shape[0] - window) // stride + 1
    out = None
    for dx in range(window):
        for dy in range(window):
            for dz in range(window):
                part = values[dx:dx + stride * count:stride, dy:dy + stride * count:stride, dz:dz + stride * count:stride]
                out = part.copy() if out is None else reduce(out, part)
    return out


def oracle_subdivision(values, factor: float, top_blocks: int = 4) -> dict:
    """Boxes and leaves the subdivision needs when each box's bound is its sampled range widened
    `factor` times. values: [2 B + 1]^3 samples, B leaf blocks per axis (a power of two times top_blocks)."""
    import numpy as np

    lows, highs = [_pool(values, np.minimum, 3, 2)], [_pool(values, np.maximum, 3, 2)]  # per leaf block
    while lows[-1].shape[0] > top_blocks:
        lows.append(_pool(lows[-1], np.minimum, 2, 2))
        highs.append(_pool(highs[-1], np.maximum, 2, 2))
    alive = np.ones(lows[-1].shape, bool)
    per_level = []
    for level in range(len(lows) - 1, -1, -1):
        middle, half = (lows[level] + highs[level]) / 2, (highs[level] - lows[level]) / 2
        per_level.append(int(alive.sum()))
        unknown = alive & ~(np.abs(middle) > factor * half)
        if level > 0:
            alive = unknown.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    return {"factor": factor, "boxes_per_level": per_level, "boxes": int(sum(per_level)), "leaves": int(unknown.sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", action="append", required=True, metavar="NAME=WEIGHTS")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--leaf", type=int, default=4, help="leaf block edge in cells, for the oracle")
    parser.add_argument("--settings", nargs="+", default=["4:affine:8"], metavar="LEAF:MODE:K")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 1.5, 2.0, 4.0, 8.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/range_oracle.json")
    args = parser.parse_args(argv)

    import torch

    from inrcore.fields.weights import load_field
    from inrcore.queries.rangemesh import estimate_range_mesh

    torch.set_num_threads(args.threads)
    blocks = math.ceil((args.resolution - 1) / args.leaf)
    if blocks % 4 or (blocks // 4) & (blocks // 4 - 1):
        parser.error(f"--resolution {args.resolution} with --leaf {args.leaf} gives {blocks} leaf blocks per axis; "
                     "the oracle needs 4 times a power of two (e.g. 512 with leaf 4: 128)")
    dense = args.resolution ** 3
    rows = []
    for item in args.field:
        name, path = item.split("=", 1)
        spec, params, _ = load_field(path)
        for setting in args.settings:
            leaf, mode, symbols = setting.split(":")
            estimate = estimate_range_mesh(spec, params, args.resolution, leaf=int(leaf), mode=mode,
                                           max_symbols=None if symbols == "all" else int(symbols))
            rows.append({"field": name, "kind": "estimate", "setting": setting, **estimate.to_dict(),
                         "cost_ratio": estimate.range_cost / dense})
            print(f"{name} estimate {setting}: certified {[round(c, 3) for c in estimate.certified]}, "
                  f"box cost {estimate.box_cost:.0f} points, plan {estimate.range_cost / dense:.2f}x the lattice",
                  flush=True)
        values = sampled_grid(spec, params, 2 * blocks + 1)
        for factor in args.factors:
            row = oracle_subdivision(values, factor)
            points = row["leaves"] * (args.leaf + 1) ** 3
            row.update(field=name, kind="oracle", resolution=args.resolution, leaf=args.leaf, points=points,
                       evaluation_ratio=dense / (row["boxes"] + points))
            rows.append(row)
            print(f"{name} oracle x{factor}: {row['boxes']} boxes, {row['leaves']} leaves, "
                  f"{row['evaluation_ratio']:.1f}x fewer evaluations than the lattice", flush=True)
    write_result(args.out, "range_oracle", argv, {"threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
