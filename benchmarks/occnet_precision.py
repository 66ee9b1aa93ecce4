"""Occupancy Network training steps per second in float32 and with bfloat16 forward passes
(`OccNetConfig.bfloat16`), side by side in one run, at several decoder widths and several splits of a
step into shapes × queries per shape.

    OMP_NUM_THREADS=2 python benchmarks/occnet_precision.py --out benchmarks/results/occnet_precision.json
    OMP_NUM_THREADS=2 python benchmarks/occnet_precision.py --out benchmarks/results/occnet_batches.json \
        --widths 128 --precisions bfloat16 --batches 16x2048,16x1024,32x1024,32x512,64x512

Each setting trains `train_occnet` on two analytic shapes (a sphere and a box, as the unit tests) for
`--steps` steps; the rate is taken between the first and the last log entry (the first `--log-every`
steps, with their one-off costs, are left out). Rounds alternate float32 and bfloat16 so that a
machine's drift falls on both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, write_result  # noqa: E402


def analytic_shapes():
    from inrcore.shapespace.occnet_training import OccupancyShape

    rng = np.random.default_rng(0)
    shapes = []
    for kind in ("sphere", "box"):
        if kind == "sphere":
            v = rng.standard_normal((4000, 3))
            surface = 0.5 * v / np.linalg.norm(v, axis=1, keepdims=True)
        else:
            surface = rng.uniform(-0.4, 0.4, (4000, 3))
            surface[np.arange(4000), rng.integers(0, 3, 4000)] = 0.4 * rng.choice([-1.0, 1.0], 4000)
        points = rng.uniform(-0.6, 0.6, (20000, 3)).astype(np.float32)
        inside = (np.linalg.norm(points, axis=1) < 0.5 if kind == "sphere"
                  else np.abs(points).max(axis=1) < 0.4)
        shapes.append(OccupancyShape(surface.astype(np.float32), points, inside))
    return shapes


def steps_per_second(config, shapes, device) -> tuple[float, float]:
    from inrcore.shapespace.occnet_training import train_occnet

    result = train_occnet(shapes, config, device)
    first, last = result.history[0], result.history[-1]
    return (last["step"] - first["step"]) / (last["seconds"] - first["seconds"]), last["loss"]


def main() -> None:
    from inrcore.shapespace.settings import OccNetConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--widths", default="64,128,256", help="decoder widths (CBN blocks)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precisions", default="float32,bfloat16", help="float32, bfloat16 or both")
    parser.add_argument("--batches", default="16x2048", help="shapes x queries per shape of a step, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shapes = analytic_shapes()
    precisions = [p for p in args.precisions.split(",") if p]
    if not precisions or set(precisions) - {"float32", "bfloat16"}:
        parser.error(f"--precisions takes float32 and bfloat16, got {args.precisions!r}")
    pairs = [b.lower().split("x") for b in args.batches.split(",") if b]
    if not pairs or not all(len(p) == 2 and all(n.isdigit() and int(n) > 0 for n in p) for p in pairs):
        parser.error(f"--batches takes SHAPESxQUERIES pairs such as 16x2048,64x512, got {args.batches!r}")
    batches = [(int(a), int(b)) for a, b in pairs]
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        for batch, n_query in batches:
            base = OccNetConfig(decoder_hidden=width, batch=batch, n_query=n_query, steps=args.steps,
                                log_every=args.log_every, lr=1e-3)
            rates = {name: [] for name in precisions}
            losses = {}
            for _ in range(args.rounds):
                for name in rates:
                    config = dataclasses.replace(base, bfloat16=name == "bfloat16")
                    rate, loss = steps_per_second(config, shapes, device)
                    rates[name].append(round(rate, 3))
                    losses[name] = round(loss, 4)
            best = {k: max(v) for k, v in rates.items()}
            row = {"decoder_hidden": width, "encoder_hidden": base.hidden, "code": base.code, "batch": batch,
                   "n_query": n_query, "steps_per_second": rates, "final_loss": losses,
                   "shapes_per_second": {k: round(v * batch, 1) for k, v in best.items()},
                   "queries_per_second": {k: round(v * batch * n_query) for k, v in best.items()}}
            if len(best) == 2:
                row["bfloat16_over_float32"] = round(best["bfloat16"] / best["float32"], 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    write_result(args.out, "occnet-precision", None,
                 {"cpu": cpu_model(), "threads": args.threads, "run_device": str(device), "rows": rows}, quiet=True)


if __name__ == "__main__":
    main()
