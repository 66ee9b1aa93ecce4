"""Benchmark: range-bound meshing (`inrcore.queries.rangemesh.range_mesh`) against dense marching cubes.

For each fitted field (a .safetensors weights file, e.g. `inr fit`'s field.safetensors) and each
lattice resolution, meshes the field densely (every lattice point evaluated) and by range analysis
with each setting given, and records network evaluations (points, and boxes bounded, one box
counted as one evaluation), wall time, mesh sizes and the distance between the two meshes:
the symmetric Chamfer distance between the two vertex sets (an upper bound of the
vertex-to-surface one) and the largest vertex deviation when both meshes have the same vertex
count, both in units of the lattice's cell. Writes one JSON file.

    python benchmarks/range_meshing.py --field siren=benchmarks/fields/bunny-siren.safetensors \\
        --field relu=benchmarks/fields/bunny-relu.safetensors --resolutions 256 512 --threads 2 \\
        --out benchmarks/results/range_meshing.json

--settings takes LEAF:MODE:K triples (K = kept affine symbols, "all" keeps every symbol).
By default `range_mesh` first estimates the plan's cost and meshes densely when it would cost
more (the row then says "fallback": true and keeps the estimate); --no-fallback always runs the
plan, to measure range analysis itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def mesh_distance(a, b, spacing: float) -> dict:
    """How far apart two meshes are, in cells: the symmetric Chamfer distance between their vertex
    sets (the mean over both meshes' vertices of the distance to the other mesh's nearest vertex,
    averaged over the two directions; an upper bound of the vertex-to-surface Chamfer distance) and,
    when both have the same number of vertices, the largest coordinate difference of the sorted vertices."""
    import numpy as np
    from scipy.spatial import cKDTree

    if len(a.vertices) == 0 or len(b.vertices) == 0:
        return {"chamfer_cells": None, "max_vertex_deviation_cells": None}
    ab = cKDTree(b.vertices).query(a.vertices)[0].mean()
    ba = cKDTree(a.vertices).query(b.vertices)[0].mean()
    deviation = None
    if len(a.vertices) == len(b.vertices):
        deviation = float(np.abs(np.sort(a.vertices, axis=0) - np.sort(b.vertices, axis=0)).max() / spacing)
    return {"chamfer_cells": float((ab + ba) / 2 / spacing), "max_vertex_deviation_cells": deviation}


def parse_setting(text: str) -> dict:
    leaf, mode, symbols = text.split(":")
    return {"leaf": int(leaf), "mode": mode, "max_symbols": None if symbols == "all" else int(symbols)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", action="append", required=True, metavar="NAME=WEIGHTS")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--settings", nargs="+", default=["8:affine:8"], metavar="LEAF:MODE:K")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fallback", action=argparse.BooleanOptionalAction, default=True,
                        help="let range_mesh fall back to the dense lattice when it predicts no gain (default)")
    parser.add_argument("--out", default="benchmarks/results/range_meshing.json")
    args = parser.parse_args(argv)

    import torch

    from inrcore.fields.weights import load_field
    from inrcore.queries.rangemesh import dense_mesh, range_mesh
    from inrcore.queries.settings import RangeMeshConfig

    torch.set_num_threads(args.threads)
    rows = []
    for item in args.field:
        name, path = item.split("=", 1)
        spec, params, _ = load_field(path)
        for resolution in args.resolutions:
            dense, dense_stats = dense_mesh(spec, params, resolution)
            spacing = 2.0 / (resolution - 1)
            rows.append({"field": name, "weights": path, **dense_stats})
            print(f"{name} {resolution} dense: {dense_stats['seconds']:.1f}s {dense_stats['evaluations']} evaluations",
                  flush=True)
            for setting in args.settings:
                options = parse_setting(setting)
                ranged, stats = range_mesh(spec, params, RangeMeshConfig(
                    resolution=resolution, leaf=options["leaf"], mode=options["mode"],
                    max_symbols=options["max_symbols"], fallback=args.fallback))
                row = {"field": name, "weights": path, **stats, **mesh_distance(ranged, dense, spacing),
                       "same_faces_as_dense": len(ranged.faces) == len(dense.faces),
                       "evaluation_ratio": dense_stats["evaluations"] / max(stats["evaluations"], 1),
                       "speedup": dense_stats["seconds"] / stats["seconds"]}
                rows.append(row)
                print(f"{name} {resolution} {stats['method']} {setting}: {stats['seconds']:.1f}s, "
                      f"{stats['evaluations']} evaluations "
                      f"({row['evaluation_ratio']:.1f}x fewer), {row['speedup']:.2f}x faster, "
                      f"chamfer {row['chamfer_cells']} cells", flush=True)
                # Rewritten after every row, so a run stopped early keeps what it measured.
                write_result(args.out, "range_meshing", argv, {"threads": args.threads, "rows": rows}, quiet=True)
    write_result(args.out, "range_meshing", argv, {"threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
