"""The Occupancy Network's conditional batch norm + ReLU as one autograd function
(`occnet.conditional_batch_norm(..., relu=True)`) against the same computation as separate torch
operations (batch norm, the code's scale and shift, ReLU: the decoder before the fused function),
side by side in one run: one layer forward and backward, and whole training steps.

    OMP_NUM_THREADS=2 python benchmarks/occnet_cbn.py --out benchmarks/results/occnet_cbn.json

The layer rows time `--layer-calls` forward + backward passes of one layer on activations
[shapes, queries, width] (bfloat16 under autocast as training runs it, and float32). The step rows
train `train_occnet` on the two analytic shapes of `occnet_precision.py` at the benchmark's settings
(64 shapes x 512 queries, decoder 128 wide, three neighbours; bfloat16 and float32) for `--steps` steps, once
with the fused function and once with the decoder's `conditional_batch_norm` replaced by the
composed operations (for this measurement only); the rate is taken after the first log interval.
Rounds alternate the two so that the machine's drift falls on both; the best round of each counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, write_result  # noqa: E402
from occnet_precision import analytic_shapes, steps_per_second  # noqa: E402


def composed(params, name: str, x: torch.Tensor, codes: torch.Tensor, training: bool,
             relu: bool = False) -> torch.Tensor:
    """The conditional batch norm as separate operations: what autograd records without the fused function."""
    flat = x.reshape(-1, x.shape[-1])
    normed = F.batch_norm(flat, params[f"{name}.running_mean"], params[f"{name}.running_var"],
                          training=training, momentum=0.1, eps=1e-5).reshape(x.shape)
    gamma = F.linear(codes, params[f"{name}.gamma.weight"], params[f"{name}.gamma.bias"])[:, None, :]
    beta = F.linear(codes, params[f"{name}.beta.weight"], params[f"{name}.beta.bias"])[:, None, :]
    out = gamma * normed + beta
    return torch.relu(out) if relu else out


def layer_seconds(function, shape, precision: str, calls: int) -> float:
    """Seconds per forward + backward of one conditional batch norm + ReLU on activations of `shape`."""
    batch, _, width = shape
    gen = torch.Generator().manual_seed(0)
    params = {"t.gamma.weight": (0.1 * torch.randn(width, 128, generator=gen)).requires_grad_(),
              "t.gamma.bias": torch.ones(width, requires_grad=True),
              "t.beta.weight": (0.1 * torch.randn(width, 128, generator=gen)).requires_grad_(),
              "t.beta.bias": torch.zeros(width, requires_grad=True),
              "t.running_mean": torch.zeros(width), "t.running_var": torch.ones(width)}
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    x = torch.randn(shape, generator=gen).to(dtype).requires_grad_()
    codes = torch.randn(batch, 128, generator=gen)
    upstream = torch.randn(shape, generator=gen).to(dtype)
    inputs = [x, *(v for v in params.values() if v.requires_grad)]

    def once():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            out = function(params, "t", x, codes, True, relu=True)
        torch.autograd.grad(out, inputs, upstream.to(out.dtype))

    for _ in range(3):
        once()
    start = time.perf_counter()
    for _ in range(calls):
        once()
    return (time.perf_counter() - start) / calls


def main() -> None:
    from inrcore.shapespace import occnet
    from inrcore.shapespace.settings import OccNetConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layer-calls", type=int, default=40)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--step-precisions", default="bfloat16,float32",
                        help="training-step rows: bfloat16 (under autocast), float32 or both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fused = occnet.conditional_batch_norm
    kinds = {"fused": fused, "composed": composed}

    layers = []
    for precision in ("bfloat16", "float32"):
        shape = (64, 512, 128)
        times = {k: [] for k in kinds}
        for _ in range(args.rounds):
            for name, function in kinds.items():
                times[name].append(layer_seconds(function, shape, precision, args.layer_calls))
        best = {k: min(v) for k, v in times.items()}
        row = {"shape": list(shape), "precision": precision,
               "ms_per_call": {k: [round(1e3 * t, 3) for t in v] for k, v in times.items()},
               "best_ms": {k: round(1e3 * v, 3) for k, v in best.items()},
               "composed_over_fused": round(best["composed"] / best["fused"], 2)}
        print(json.dumps(row), flush=True)
        layers.append(row)

    shapes = analytic_shapes()
    step_rows = []
    for precision in args.step_precisions.split(","):
        config = OccNetConfig(decoder_hidden=128, batch=64, n_query=512, neighbours=3,
                              bfloat16=precision == "bfloat16", steps=args.steps, log_every=args.log_every, lr=2e-3)
        rates = {k: [] for k in kinds}
        losses = {}
        try:
            for _ in range(args.rounds):
                for name, function in kinds.items():
                    occnet.conditional_batch_norm = function  # what occupancy_logits calls
                    rate, loss = steps_per_second(config, shapes, torch.device("cpu"))
                    rates[name].append(round(rate, 3))
                    losses[name] = round(loss, 4)
        finally:
            occnet.conditional_batch_norm = fused
        best = {k: max(v) for k, v in rates.items()}
        row = {"settings": "64 shapes x 512 queries, encoder 128, code 128, decoder 128 x 5 blocks, three neighbours",
               "precision": precision, "steps_per_second": rates,
               "median_steps_per_second": {k: round(statistics.median(v), 3) for k, v in rates.items()},
               "final_loss": losses, "fused_over_composed": round(best["fused"] / best["composed"], 2),
               "median_fused_over_composed": round(statistics.median(rates["fused"])
                                                   / statistics.median(rates["composed"]), 2)}
        print(json.dumps(row), flush=True)
        step_rows.append(row)
    write_result(args.out, "occnet-cbn", None, {"cpu": cpu_model(), "threads": args.threads,
                                                "layer": layers, "training_steps": step_rows}, quiet=True)


if __name__ == "__main__":
    main()
