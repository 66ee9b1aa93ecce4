"""Benchmark: the whole demo, `inr run datasets/demo.yaml`, timed end to end from a fresh run folder.

Runs the installed `inr` command in a new process (Prefect without a server, a Dask
LocalCluster, Zarr and MLflow in the run folder, exactly as a user runs it), then reads the
run's summary.json. Writes one JSON file with the wall time, per-shape metrics and stage times.

    python benchmarks/demo_pipeline.py --out benchmarks/results/demo_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="datasets/demo.yaml")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    inr = shutil.which("inr") or str(Path(sys.executable).with_name("inr"))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        done = subprocess.run([inr, "run", args.manifest, "--out", str(run_dir), "--quiet"],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode not in (0, 1):
            print(done.stdout, done.stderr, file=sys.stderr)
            return done.returncode
        summary = json.loads((run_dir / "summary.json").read_text())
    shapes = [{"shape_id": r["shape_id"], "status": r["status"], "error": r["error"], "metrics": r["metrics"],
               "stage_seconds": r["seconds"]} for r in summary["shapes"]]
    write_result(args.out, "demo_pipeline", argv, {
        "manifest": args.manifest, "exit_code": done.returncode, "wall_seconds": round(seconds, 1),
        "config": summary["settings"]["config"], "shapes": shapes,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
