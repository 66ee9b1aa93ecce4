"""Training steps a second of the Occupancy Network with its local readings side by side in one run:
none (the authors' decoder), three neighbours averaged (`occnet_local.local_features`) and k neighbours
pooled (`occnet_local.pooled_local_features`, 8 and 16, 32 wide).

    OMP_NUM_THREADS=2 python benchmarks/occnet_local.py --out benchmarks/results/occnet_local.json

Each variant trains `train_occnet` on the two analytic shapes of `occnet_precision.py` at the
benchmark's settings (64 shapes x 512 queries, encoder, code and decoder 128 wide, bfloat16 under
autocast) for `--steps` steps; the rate is taken after the first log interval. Rounds go through
every variant in turn, so that the machine's drift falls on all; the median round of each counts,
and each variant's rate is given against the averaged reading's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, write_result  # noqa: E402
from occnet_precision import analytic_shapes, steps_per_second  # noqa: E402


VARIANTS = {  # name: (neighbours, local_encoder)
    "none": (0, "average"),
    "average 3": (3, "average"),
    "pool 8": (8, "pool"),
    "pool 16": (16, "pool"),
}


def main() -> None:
    from inrcore.shapespace.settings import OccNetConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = analytic_shapes()
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    losses: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, (neighbours, encoder) in VARIANTS.items():
            config = OccNetConfig(decoder_hidden=128, batch=64, n_query=512, bfloat16=True, lr=2e-3,
                                  neighbours=neighbours, local_encoder=encoder, local_width=32,
                                  steps=args.steps, log_every=args.log_every)
            rate, loss = steps_per_second(config, shapes, torch.device("cpu"))
            rates[name].append(round(rate, 3))
            losses[name] = round(loss, 4)
            print(json.dumps({"variant": name, "steps_per_second": rates[name][-1]}), flush=True)
    median = {name: round(statistics.median(v), 3) for name, v in rates.items()}
    rows = [{"variant": name, "neighbours": VARIANTS[name][0], "local_encoder": VARIANTS[name][1],
             "steps_per_second": rates[name], "median_steps_per_second": median[name],
             "median_over_average_3": round(median[name] / median["average 3"], 2), "final_loss": losses[name]}
            for name in VARIANTS]
    write_result(args.out, "occnet-local", None,
                 {"cpu": cpu_model(), "threads": args.threads, "steps": args.steps,
                  "settings": "64 shapes x 512 queries, encoder 128, code 128, decoder 128 x 5 blocks, bfloat16, "
                              "pooled features 32 wide",
                  "variants": rows}, quiet=True)


if __name__ == "__main__":
    main()
