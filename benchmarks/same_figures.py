"""Benchmark: two checkouts of inrflow side by side give the same figures (after a restructuring).

Runs the quick benchmarks in each checkout, alternating before / after so that load on the
machine falls on both alike, with that checkout's own code (its folder first on the import path):
range tightness of affine and interval bounds on the two stored bunny fields, a short fit per
method (`inr fit`: SIREN 300 steps on spot, IDF 200 steps on bunny, 64³ meshing) and a short
radiance field (`inr nerf`: hash grid, 150 steps on a 32 x 32 scene of spot rendered once by the
"after" checkout). Records every figure that does not measure time, whether the two sides agree
exactly, and the after / before ratio of the timings. Writes one JSON file.

    git worktree add /tmp/inrflow-before <commit>
    python benchmarks/same_figures.py --before /tmp/inrflow-before --after . \\
        --out benchmarks/results/same_figures.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


FITS = {"siren": ("spot.obj", 300), "idf": ("bunny.obj", 200)}


def run(checkout: Path, args: list[str]) -> float:
    """Run `python args...` in `checkout` with its own code first on the import path; its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=checkout, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def untimed(record: dict) -> dict:
    """The figures of a result that do not measure time."""
    return {k: v for k, v in record.items() if "second" not in k and not k.startswith("ms_") and k != "command"
            and not isinstance(v, (dict, list))}


def compare(before: dict, after: dict) -> dict:
    keys = sorted(set(before) | set(after))
    different = [k for k in keys if before.get(k) != after.get(k)]
    return {"figures": len(keys), "different": different, "same": not different}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, type=Path, help="the earlier checkout")
    parser.add_argument("--after", required=True, type=Path, help="the later checkout")
    parser.add_argument("--out", default="benchmarks/results/same_figures.json")
    args = parser.parse_args(argv)
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    data = sides["after"] / "datasets" / "meshes"
    fields = sides["after"] / "benchmarks" / "fields"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # range tightness: every figure of every row
        tightness, seconds = {}, {}
        for side, checkout in sides.items():
            out = tmp / f"tightness-{side}.json"
            seconds[side] = run(checkout, [
                "benchmarks/range_tightness.py", "--field", f"relu={fields / 'bunny-relu.safetensors'}",
                "--field", f"siren={fields / 'bunny-siren.safetensors'}",
                "--half-widths", "0.001", "0.004", "0.008", "0.016", "0.064", "--threads", "1", "--out", str(out)])
            tightness[side] = [untimed(row) for row in json.loads(out.read_text())["rows"]]
        same = [compare(a, b) for a, b in zip(tightness["before"], tightness["after"])]
        rows.append({"benchmark": "range_tightness", "rows": len(same),
                     "figures": sum(s["figures"] for s in same), "same": all(s["same"] for s in same),
                     "time_ratio": seconds["after"] / seconds["before"]})
        # short fits
        for method, (mesh, steps) in FITS.items():
            records, train = {}, {}
            for side, checkout in sides.items():
                out = tmp / f"fit-{method}-{side}"
                run(checkout, ["-m", "flows.cli", "fit", str(data / mesh), "--method", method, "--steps", str(steps),
                               "--resolution", "64", "--device", "cpu", "--out", str(out), "--quiet"])
                record = json.loads((out / "metrics.json").read_text())
                records[side], train[side] = untimed(record), record["seconds"]
            rows.append({"benchmark": f"fit-{method}", "mesh": mesh, "steps": steps, **compare(records["before"],
                         records["after"]), "figures_after": records["after"],
                         "time_ratio": train["after"] / train["before"]})
        # a short radiance field on one scene
        scene = tmp / "scene"
        run(sides["after"], ["-m", "flows.cli", "scene", str(data / "spot.obj"), "--out", str(scene), "--size", "32",
                             "--train", "20", "--test", "4"])
        records, train = {}, {}
        for side, checkout in sides.items():
            out = tmp / f"nerf-{side}"
            run(checkout, ["-m", "flows.cli", "nerf", str(scene), "--model", "ngp", "--steps", "150", "--device", "cpu",
                           "--frames", "0", "--out", str(out), "--quiet"])
            record = json.loads((out / "metrics.json").read_text())
            records[side], train[side] = untimed(record), record["seconds"]
        rows.append({"benchmark": "nerf-ngp", "steps": 150, "size": 32, **compare(records["before"], records["after"]),
                     "figures_after": records["after"], "time_ratio": train["after"] / train["before"]})
    write_result(args.out, "same_figures", argv, {"before": str(sides["before"]), "after": str(sides["after"]),
                                                   "rows": rows})
    return 0 if all(row["same"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
