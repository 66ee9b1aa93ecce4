"""Benchmark: every SDF method at the same wall-clock budget on the same shapes.

For each (shape, method) the mesh is normalised and sampled as the pipeline does, the field
is fitted for `--seconds` of wall time (the learning-rate schedule follows the clock), then
evaluated on a `--resolution`^3 grid, meshed and measured against the input mesh
(Chamfer-L1, F-score at 1% of the diagonal, normal consistency, Hausdorff; see
inrcore.metrics). Each run is one process pinned to `--cores-per-job` cores with as many
torch threads, and writes one JSON row to `--rows`; rows already there are reused, so an
interrupted benchmark resumes. `--out` gathers all rows of `--rows` into one result file and
checks the claims listed in BENCHMARKS.md.

    python benchmarks/sdf_quality.py --device cpu --seconds 300 --cores-per-job 2 --jobs 1 \
        --rows benchmarks/results/sdf_quality_rows --out benchmarks/results/sdf_quality.json

Methods: siren, idf, igr, relu-pe (the `inr fit --method` names) and relu (a ReLU MLP
without positional encoding: relu-pe with zero frequencies), each with
`inrcore.methods.method_overrides`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"bunny": "datasets/meshes/bunny.obj", "fandisk": "datasets/meshes/fandisk.obj",
          "spot": "datasets/meshes/spot.obj", "rocker-arm": "datasets/meshes/rocker-arm.obj"}
METHODS = ("siren", "idf", "igr", "relu-pe", "relu")


def run_one(shape: str, method: str, seconds: float, device: str, resolution: int, threads: int) -> dict:
    """Fit one shape with one method for `seconds`; its metrics, steps and times."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    from inrcore.config import PipelineConfig, config_replace
    from inrcore.fitshape import fit_shape
    from inrcore.methods import method_overrides

    overrides = method_overrides("relu-pe" if method == "relu" else method)
    overrides.setdefault("training", {}).update({"steps": 10**9, "seconds": seconds, "device": device,
                                                 "log_every": 10**9})
    if method == "relu":
        overrides["training"].setdefault("network", {})["frequencies"] = 0
    overrides["grid"] = {"resolution": resolution}
    config = config_replace(PipelineConfig(), overrides, "benchmark")
    start = time.perf_counter()
    result = fit_shape(str(ROOT / SHAPES[shape]), config)
    return {"shape": shape, "method": method, "device": result.fit.device, "threads": threads,
            "budget_seconds": seconds, "train_seconds": round(result.fit.seconds, 1), "steps": result.fit.steps,
            "total_seconds": round(time.perf_counter() - start, 1), "resolution": resolution,
            "faces": int(len(result.mesh.faces)),
            **{k: round(float(v), 5) for k, v in result.metrics.items()}}


def launch(shape: str, method: str, args, cores: list[int], rows: Path) -> subprocess.Popen:
    """Start one run in its own process, pinned to `cores`, writing its row to `rows`."""
    command = [sys.executable, __file__, "--one", shape, method, "--seconds", str(args.seconds), "--device",
               args.device, "--resolution", str(args.resolution), "--rows", str(rows),
               "--cores-per-job", str(len(cores))]
    env = dict(os.environ, OMP_NUM_THREADS=str(len(cores)), MKL_NUM_THREADS=str(len(cores)))
    return subprocess.Popen(command, env=env, preexec_fn=lambda: os.sched_setaffinity(0, cores))


def row_path(rows: Path, shape: str, method: str, device: str) -> Path:
    return rows / f"{shape}-{method}-{'cuda' if device.startswith('cuda') else device}.json"


def run_all(args) -> None:
    rows = Path(args.rows)
    rows.mkdir(parents=True, exist_ok=True)
    todo = [(s, m) for s in args.shapes for m in args.methods
            if not row_path(rows, s, m, args.device).is_file()]
    available = sorted(os.sched_getaffinity(0))[args.first_core:]
    slots = [available[i * args.cores_per_job:(i + 1) * args.cores_per_job] for i in range(args.jobs)]
    if any(len(slot) < args.cores_per_job for slot in slots):
        raise SystemExit(f"{args.jobs} jobs of {args.cores_per_job} cores need more than the {len(available)} cores here")
    running: dict = {}
    deadline = time.monotonic() + args.deadline if args.deadline else None
    while todo or running:
        for slot_index, slot in enumerate(slots):
            if slot_index not in running and todo:
                if deadline and time.monotonic() + args.seconds * 1.5 > deadline:
                    todo = []
                    break
                shape, method = todo.pop(0)
                running[slot_index] = (shape, method, launch(shape, method, args, slot, rows))
        time.sleep(0.5)
        for slot_index, (shape, method, process) in list(running.items()):
            if process.poll() is not None:
                del running[slot_index]
                print(f"{shape} {method}: exit {process.returncode}", file=sys.stderr, flush=True)


def gather(rows: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(rows.glob("*.json"))]


def claims(results: list[dict]) -> dict:
    """The issue's claims and targets, checked on the rows of each device."""
    out = {}
    for device in sorted({r["device"].split(":")[0] for r in results}):
        table = {(r["shape"], r["method"]): r for r in results if r["device"].split(":")[0] == device}
        checks = {}
        for shape in ("bunny", "spot"):
            for method in ("siren", "idf"):
                r = table.get((shape, method))
                if r:
                    checks[f"{method} {shape}: chamfer <= 0.005 and nc >= 0.95"] = (
                        r["chamfer_l1"] <= 0.005 and r["normal_consistency"] >= 0.95)
        for shape in SHAPES:
            a, b = table.get((shape, "siren")), table.get((shape, "relu"))
            if a and b:
                checks[f"{shape}: siren nc > relu (no PE) nc"] = a["normal_consistency"] > b["normal_consistency"]
                checks[f"{shape}: siren chamfer < relu (no PE) chamfer"] = a["chamfer_l1"] < b["chamfer_l1"]
        for shape in ("fandisk", "bunny"):
            a, b = table.get((shape, "idf")), table.get((shape, "siren"))
            if a and b:
                checks[f"{shape}: idf nc > siren nc"] = a["normal_consistency"] > b["normal_consistency"]
        out[device] = checks
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    parser.add_argument("--seconds", type=float, default=300.0, help="training wall-clock budget per fit")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--resolution", type=int, default=256, help="grid resolution for meshing")
    parser.add_argument("--cores-per-job", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each on its own cores")
    parser.add_argument("--first-core", type=int, default=0, help="leave the cores before this one free")
    parser.add_argument("--deadline", type=float, default=None,
                        help="start no run that could end after this many seconds (resume later)")
    parser.add_argument("--rows", required=True, help="folder of one JSON row per run (reused when present)")
    parser.add_argument("--out", help="gather every row of --rows into this result file")
    parser.add_argument("--one", nargs=2, metavar=("SHAPE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shapes = [s for s in args.shapes.split(",") if s]
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.shapes) - set(SHAPES)) + sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown shapes or methods: {unknown}")

    if args.one:
        row = run_one(args.one[0], args.one[1], args.seconds, args.device, args.resolution, args.cores_per_job)
        row["machine"] = machine()
        row["cores"] = sorted(os.sched_getaffinity(0))
        path = row_path(Path(args.rows), args.one[0], args.one[1], args.device)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, indent=2) + "\n")
        tmp.replace(path)
        print(json.dumps(row), flush=True)
        return 0
    run_all(args)
    if args.out:
        results = gather(Path(args.rows))
        write_result(args.out, "sdf_quality", argv, {"runs": results, "claims": claims(results)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
