"""Benchmark: every SDF method at the same wall-clock budget on the same shapes.

For each (shape, method) the mesh is normalised and sampled as the pipeline does, the field
is fitted for `--seconds` of wall time (the learning-rate schedule follows the clock), then
evaluated on a `--resolution`^3 grid, meshed and measured against the input mesh
(Chamfer-L1, F-score at 1% of the diagonal, normal consistency, Hausdorff; see
inrcore.geometry.metrics: exact point-to-surface figures, and the point-to-point ones of earlier
versions as "<name>_points"). Each run is one process pinned to `--cores-per-job` cores with
as many torch threads, and writes one JSON row to `--rows`; rows already there are reused, so
an interrupted benchmark resumes. Next to each row `<shape>-<method>-<device>.json` it keeps
the fitted field (`.safetensors`, `inrcore.fields.weights.save_field`, with the normalisation and
config in its metadata) and the extracted mesh (`.npz`: float64 `vertices` [V, 3] in normalised
coordinates, as measured, and int64 `faces` [F, 3]; exact, where a PLY would round the
vertices to float32 and move the figures by ~1e-6), both written before the row. `--out`
gathers all rows of `--rows` into one result file and checks the claims listed in
BENCHMARKS.md, with the IDF-minus-SIREN margins of every figure.

    python benchmarks/sdf_quality.py --device cpu --seconds 300 --cores-per-job 2 --jobs 1 \
        --rows benchmarks/results/sdf_quality_rows --out benchmarks/results/sdf_quality.json

`--rescore` fits nothing: it measures the saved mesh of every selected row again with the
current `inrcore.geometry.metrics` (re-extracting it from the saved field when only that is there),
replaces the row's metric figures and records `metrics_version`; rows with neither are
listed as skipped. With `--out` it then gathers as usual:

    python benchmarks/sdf_quality.py --rescore --rows benchmarks/results/sdf_quality_rows \
        --out benchmarks/results/sdf_quality.json

Methods: siren, idf, igr, relu-pe (the `inr fit --method` names) and relu (a ReLU MLP
without positional encoding: relu-pe with zero frequencies), each with
`inrcore.sdf.methods.method_overrides`.
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
from common import load_saved_mesh, machine, metric_figures, save_mesh, write_result  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"bunny": "datasets/meshes/bunny.obj", "fandisk": "datasets/meshes/fandisk.obj",
          "spot": "datasets/meshes/spot.obj", "rocker-arm": "datasets/meshes/rocker-arm.obj"}
METHODS = ("siren", "idf", "igr", "relu-pe", "relu")


def run_one(shape: str, method: str, seconds: float, device: str, resolution: int, threads: int,
            stem: Path, steps: int | None = None) -> dict:
    """Fit one shape with one method for `seconds` (or, given `steps`, for that many steps, the
    learning-rate schedule following the steps: a budget that the machine's load cannot change);
    its metrics, steps and times.

    Saves the field to `stem`.safetensors and the mesh (normalised coordinates) to `stem`.npz.
    """
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    from inrcore.fields.weights import save_field
    from inrcore.files import make_readable
    from inrcore.geometry.metrics import METRICS_VERSION
    from inrcore.sdf.fitshape import fit_shape
    from inrcore.sdf.methods import method_overrides
    from inrcore.sdf.settings import PipelineConfig
    from inrcore.settings import NO_STEP_CAP, config_replace, config_to_dict

    overrides = method_overrides("relu-pe" if method == "relu" else method)
    budget = {"steps": steps, "seconds": None} if steps else {"steps": NO_STEP_CAP, "seconds": seconds}
    overrides.setdefault("training", {}).update({**budget, "device": device, "log_every": 10**9})
    if method == "relu":
        overrides["training"].setdefault("network", {})["frequencies"] = 0
    overrides["grid"] = {"resolution": resolution}
    config = config_replace(PipelineConfig(), overrides, "benchmark")
    start = time.perf_counter()
    result = fit_shape(str(ROOT / SHAPES[shape]), config)
    total = time.perf_counter() - start
    save_field(stem.with_suffix(".safetensors"), result.fit.spec, result.fit.params, metadata={
        "method": method, "shape": shape, "input": SHAPES[shape], "normalisation": result.normalisation.to_dict(),
        "config": config_to_dict(config)})
    make_readable(stem.with_suffix(".safetensors"))
    save_mesh(stem.with_suffix(".npz"), result.mesh)
    return {"shape": shape, "method": method, "device": result.fit.device, "threads": threads,
            "budget_seconds": None if steps else seconds, "budget_steps": steps, "train_seconds": round(result.fit.seconds, 1), "steps": result.fit.steps,
            "total_seconds": round(total, 1), "resolution": resolution,
            "faces": int(len(result.mesh.faces)),
            **metric_figures(result.metrics),
            "metrics_version": METRICS_VERSION, "metrics_config": config_to_dict(config.metrics),
            "normalisation": result.normalisation.to_dict(),
            "field": stem.with_suffix(".safetensors").name, "mesh": stem.with_suffix(".npz").name}


def rescore(rows: Path, shapes: list[str], methods: list[str]) -> dict:
    """Measure the saved mesh of every row of `shapes` x `methods` in `rows` again.

    A row's mesh is `<row>.npz`; without it, the mesh is extracted again from `<row>.safetensors`
    on the grid of the config stored there (and saved). The reference is the input mesh moved by
    the row's normalisation (as `fit_shape` measured it); metric settings are the row's
    `metrics_config` (the defaults when absent). Rewrites each rescored row in place.
    Returns {"rescored": [row names], "skipped": {row name: why}}.
    """
    sys.path.insert(0, str(ROOT))
    from inrcore.fields.weights import load_field
    from inrcore.files import write_atomic
    from inrcore.geometry.meshes import Normalisation
    from inrcore.geometry.metrics import METRIC_NAMES, METRICS_VERSION, POINT_METRIC_NAMES
    from inrcore.geometry.settings import MetricsConfig
    from inrcore.sdf.fitshape import (
        field_surface,
        load_reference,
        measure_reconstruction,
        normalisation_of,
        read_shape,
    )
    from inrcore.sdf.settings import PipelineConfig
    from inrcore.settings import config_from_dict

    done, skipped = [], {}
    for path in sorted(rows.glob("*.json")):
        row = json.loads(path.read_text())
        if row.get("shape") not in shapes or row.get("method") not in methods:
            continue
        mesh_path, field_path = path.with_suffix(".npz"), path.with_suffix(".safetensors")
        if mesh_path.is_file():
            mesh = load_saved_mesh(mesh_path)
        elif field_path.is_file():
            spec, params, metadata = load_field(field_path)
            grid = config_from_dict(PipelineConfig, metadata.get("config"), str(field_path)).grid
            mesh = field_surface(spec, params, grid, "cpu", where=str(field_path))
            save_mesh(mesh_path, mesh)
            row["mesh"] = mesh_path.name
        else:
            skipped[path.name] = "no saved mesh or field next to it (fitted before they were kept): fit it again"
            continue
        source = ROOT / SHAPES[row["shape"]]
        if "normalisation" in row:
            normalisation = Normalisation.from_dict(row["normalisation"])
        else:
            normalisation = normalisation_of(read_shape(source), PipelineConfig().sampling.extent)
        config = config_from_dict(MetricsConfig, row.get("metrics_config"), f"{path.name}: metrics_config")
        clock = time.perf_counter()
        metrics = measure_reconstruction(mesh, load_reference(source, normalisation), config)
        for key in METRIC_NAMES + POINT_METRIC_NAMES:
            row.pop(key, None)
        row.update(metric_figures(metrics))
        row.update(metrics_version=METRICS_VERSION, rescored_seconds=round(time.perf_counter() - clock, 2))
        text = json.dumps(row, indent=2) + "\n"
        write_atomic(path, lambda tmp: Path(tmp).write_text(text))
        done.append(path.name)
        print(f"{path.name}: chamfer_l1 {row['chamfer_l1']:.5f} (points {row['chamfer_l1_points']:.5f}) "
              f"nc {row['normal_consistency']:.4f}", file=sys.stderr, flush=True)
    for name, why in skipped.items():
        print(f"{name}: skipped, {why}", file=sys.stderr, flush=True)
    return {"rescored": done, "skipped": skipped}


def launch(shape: str, method: str, args, cores: list[int], rows: Path) -> subprocess.Popen:
    """Start one run in its own process, pinned to `cores`, writing its row to `rows`."""
    command = [sys.executable, __file__, "--one", shape, method, "--seconds", str(args.seconds), "--device",
               args.device, "--resolution", str(args.resolution), "--rows", str(rows),
               "--cores-per-job", str(len(cores))]
    if method in args.steps:
        command += ["--steps", f"{method}={args.steps[method]}"]
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
                if deadline and not args.steps and time.monotonic() + args.seconds * 1.5 > deadline:
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
    """The issue's claims and targets, checked on the rows of each device.

    The IDF-over-SIREN claims (small margins) are checked on every shape with both the
    point-to-surface figures and, where the rows have them, the point-to-point ones; their
    margins are in `margins`."""
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
        for shape in SHAPES:
            a, b = table.get((shape, "idf")), table.get((shape, "siren"))
            if a and b:
                checks[f"{shape}: idf nc > siren nc"] = a["normal_consistency"] > b["normal_consistency"]
                checks[f"{shape}: idf chamfer <= siren chamfer"] = a["chamfer_l1"] <= b["chamfer_l1"]
                if "normal_consistency_points" in a and "normal_consistency_points" in b:
                    checks[f"{shape}: idf nc_points > siren nc_points"] = (
                        a["normal_consistency_points"] > b["normal_consistency_points"])
                    checks[f"{shape}: idf chamfer_points <= siren chamfer_points"] = (
                        a["chamfer_l1_points"] <= b["chamfer_l1_points"])
        out[device] = checks
    return out


def margins(results: list[dict]) -> dict:
    """IDF minus SIREN per device and shape, for every metric both rows have (distances:
    negative is better for IDF; fscore and normal consistency: positive is)."""
    out = {}
    for device in sorted({r["device"].split(":")[0] for r in results}):
        table = {(r["shape"], r["method"]): r for r in results if r["device"].split(":")[0] == device}
        for shape in SHAPES:
            a, b = table.get((shape, "idf")), table.get((shape, "siren"))
            if a and b:
                keys = [k for k in a if k in b and (k.startswith(("chamfer_l1", "fscore", "normal_consistency",
                                                                   "hausdorff")))]
                out.setdefault(device, {})[shape] = {k: round(a[k] - b[k], 6) for k in keys}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    parser.add_argument("--seconds", type=float, default=300.0, help="training wall-clock budget per fit")
    parser.add_argument("--steps", default="", metavar="METHOD=N,...",
                        help="fixed training steps per method instead of --seconds, e.g. siren=5200,idf=3050 "
                             "(the steps each made in 300 s on a quiet 2-core machine): figures that the "
                             "machine's load cannot change")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--resolution", type=int, default=256, help="grid resolution for meshing")
    parser.add_argument("--cores-per-job", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each on its own cores")
    parser.add_argument("--first-core", type=int, default=0, help="leave the cores before this one free")
    parser.add_argument("--deadline", type=float, default=None,
                        help="start no run that could end after this many seconds (resume later)")
    parser.add_argument("--rows", required=True, help="folder of one JSON row per run (reused when present)")
    parser.add_argument("--out", help="gather every row of --rows into this result file")
    parser.add_argument("--rescore", action="store_true",
                        help="fit nothing: measure the saved meshes of the selected rows again with the current "
                             "metrics and rewrite those rows (then gather with --out)")
    parser.add_argument("--one", nargs=2, metavar=("SHAPE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shapes = [s for s in args.shapes.split(",") if s]
    args.methods = [m for m in args.methods.split(",") if m]
    try:
        args.steps = {m: int(n) for m, n in (item.split("=", 1) for item in args.steps.split(",") if item)}
    except ValueError:
        parser.error(f"--steps {args.steps!r}: expected METHOD=N,... e.g. siren=5200,idf=3050")
    unknown = sorted(set(args.shapes) - set(SHAPES)) + sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown shapes or methods: {unknown}")

    if args.one:
        path = row_path(Path(args.rows), args.one[0], args.one[1], args.device)
        row = run_one(args.one[0], args.one[1], args.seconds, args.device, args.resolution, args.cores_per_job,
                      stem=path.with_suffix(""), steps=args.steps.get(args.one[1]))
        row["machine"] = machine()
        row["cores"] = sorted(os.sched_getaffinity(0))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, indent=2) + "\n")
        tmp.replace(path)
        print(json.dumps(row), flush=True)
        return 0
    extra = {}
    if args.rescore:
        extra["rescore"] = rescore(Path(args.rows), args.shapes, args.methods)
    else:
        run_all(args)
    if args.out:
        results = gather(Path(args.rows))
        write_result(args.out, "sdf_quality", argv,
                     {"runs": results, "claims": claims(results), "margins": margins(results), **extra})
    return 0


if __name__ == "__main__":
    sys.exit(main())
