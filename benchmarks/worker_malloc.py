"""Benchmark: training speed under the glibc malloc settings a Dask worker can get.

Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536; inrflow's LocalCluster sets
the values in flows.collection.WORKER_MALLOC_ENV instead. This fits the same synthetic sphere
for a fixed number of steps (one torch thread) in a fresh process under each environment and
records wall, user and system seconds. Writes one JSON file.

    python benchmarks/worker_malloc.py --out benchmarks/results/worker_malloc.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


FIT = """
import json, resource, time, numpy as np, torch
torch.set_num_threads(1)
from inrcore.settings import TrainConfig
from inrcore.sdf.training import fit_sdf
rng = np.random.default_rng(0)
p = rng.normal(size=(50000, 3)); p /= np.linalg.norm(p, axis=1, keepdims=True)
v = rng.uniform(-1, 1, (60000, 3))
start = time.perf_counter()
fit_sdf(p * 0.5, p, v, TrainConfig(steps={steps}), volume_sdf=np.linalg.norm(v, axis=1) - 0.5)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"wall_seconds": round(wall, 2), "user_seconds": round(usage.ru_utime, 2),
                  "system_seconds": round(usage.ru_stime, 2)}}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from flows.collection import WORKER_MALLOC_ENV

    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    settings = {
        "glibc default": {},
        "dask nanny default (MALLOC_TRIM_THRESHOLD_=65536)": {"MALLOC_TRIM_THRESHOLD_": "65536"},
        "inrflow LocalCluster (WORKER_MALLOC_ENV)": WORKER_MALLOC_ENV,
    }
    runs = {}
    for name, extra in settings.items():
        done = subprocess.run([sys.executable, "-c", FIT.format(steps=args.steps)], env={**base, **extra},
                              capture_output=True, text=True, check=True)
        runs[name] = {"env": extra, **json.loads(done.stdout.strip().splitlines()[-1])}
    write_result(args.out, "worker_malloc", argv, {"steps": args.steps, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
