"""Occupancy Network training steps per second of two or more checkouts of this project side by side in
one run: each round trains every checkout in turn, in a fresh process with that checkout's `inrcore`
first on the path, so that a machine's drift falls on all of them.

    git worktree add --detach /tmp/before <commit>
    OMP_NUM_THREADS=2 python benchmarks/occnet_checkouts.py --out benchmarks/results/occnet_checkouts.json \
        --checkout before=/tmp/before --checkout after=. --set hidden=64 --set neighbours=3
    OMP_NUM_THREADS=2 python benchmarks/occnet_checkouts.py --out OUT --checkout global=. --checkout pooled=. \
        --set-for pooled:encoder_neighbours=8

Every checkout trains `train_occnet` on the two analytic shapes of `occnet_precision.py` with the same
`OccNetConfig` (the two-core settings of BENCHMARKS.md's Occupancy Network runs: 64 shapes x 512
queries, decoder 128 wide, float32, stretched and bent shapes, lr 2e-3; `--set KEY=VALUE` changes any
field, `--set-for NAME:KEY=VALUE` that checkout's alone, so that one tree can run twice with two settings)
for `--steps` steps; the rate is taken between the first and the last log entry. The median
round of each checkout counts, and each rate is given against the first checkout's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, write_result  # noqa: E402


SETTINGS = {"decoder_hidden": 128, "batch": 64, "n_query": 512, "bfloat16": False, "lr": 2e-3,
            "scale_jitter": 0.15, "warp_jitter": 0.2}

TRAIN = """
import json, sys, torch
sys.path.insert(1, {benchmarks!r})
from occnet_precision import analytic_shapes, steps_per_second
from inrcore.settings import config_from_dict
from inrcore.shapespace.settings import OccNetConfig
torch.set_num_threads({threads})
config = config_from_dict(OccNetConfig, {settings!r}, "the benchmark's settings")
rate, loss = steps_per_second(config, analytic_shapes(), torch.device("cpu"))
print(json.dumps({{"rate": rate, "loss": loss}}))
"""


def checkouts_of(values: list[str]) -> dict[str, Path]:
    """{name: root} of --checkout NAME=PATH options; SystemExit naming a bad one."""
    checkouts = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path or name in checkouts or ":" in name:
            raise SystemExit(f"--checkout takes NAME=PATH with distinct names, got {value!r}")
        checkouts[name] = Path(path).resolve()
        if not (checkouts[name] / "inrcore" / "shapespace" / "occnet.py").is_file():
            raise SystemExit(f"--checkout {value}: no inrcore/shapespace/occnet.py under {checkouts[name]}")
    return checkouts


def settings_for(values: list[str], names) -> dict[str, list[str]]:
    """{checkout name: its KEY=VALUE items} of --set-for NAME:KEY=VALUE options; SystemExit naming a bad one."""
    items: dict[str, list[str]] = {name: [] for name in names}
    for value in values:
        name, sep, item = value.partition(":")
        if not sep or name not in items or "=" not in item:
            raise SystemExit(f"--set-for takes NAME:KEY=VALUE with NAME one of the checkouts {sorted(items)}, "
                             f"got {value!r}")
        items[name].append(item)
    return items


def settings_of(items: list[str], steps: int, log_every: int) -> dict:
    """SETTINGS with the --set KEY=VALUE options (the command line's reader) and the step counts, checked
    against this checkout's OccNetConfig; SystemExit with its message when they do not fit."""
    from flows.cli.overrides import overrides_from_set
    from inrcore.errors import ConfigError
    from inrcore.settings import config_from_dict
    from inrcore.shapespace.settings import OccNetConfig

    try:
        settings = {**SETTINGS, **overrides_from_set(items), "steps": steps, "log_every": log_every}
        config_from_dict(OccNetConfig, settings, "--set")
    except ConfigError as error:
        raise SystemExit(str(error))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkout", action="append", required=True, help="NAME=PATH of a checkout's root")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE of OccNetConfig (the value read as YAML)")
    parser.add_argument("--set-for", action="append", default=[],
                        help="NAME:KEY=VALUE of OccNetConfig for the checkout NAME alone, after --set")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    checkouts = checkouts_of(args.checkout)
    own = settings_for(args.set_for, checkouts)
    settings = {name: settings_of(args.set + own[name], args.steps, args.log_every) for name in checkouts}
    codes = {name: TRAIN.format(benchmarks=str(Path(__file__).resolve().parent), threads=args.threads,
                                settings=settings[name]) for name in checkouts}
    rates: dict[str, list[float]] = {name: [] for name in checkouts}
    losses: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, path in checkouts.items():
            env = {**os.environ, "PYTHONPATH": str(path)}
            done = subprocess.run([sys.executable, "-c", codes[name]], env=env, cwd=path, capture_output=True,
                                  text=True)
            if done.returncode:
                raise SystemExit(f"checkout {name} ({path}) failed:\n{done.stderr[-2000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rates[name].append(round(row["rate"], 3))
            losses[name] = round(row["loss"], 4)
            print(json.dumps({"checkout": name, "steps_per_second": rates[name][-1]}), flush=True)
    first = next(iter(checkouts))
    median = {name: statistics.median(v) for name, v in rates.items()}
    rows = [{"checkout": name, "path": str(path), "settings": settings[name], "steps_per_second": rates[name],
             "median_steps_per_second": round(median[name], 3),
             f"median_over_{first}": round(median[name] / median[first], 3), "final_loss": losses[name]}
            for name, path in checkouts.items()]
    write_result(args.out, "occnet-checkouts", None,
                 {"cpu": cpu_model(), "threads": args.threads, "steps": args.steps, "checkouts": rows}, quiet=True)


if __name__ == "__main__":
    main()
