"""Benchmark: MISE (`inrcore.queries.mise.mise_field_mesh`) against dense marching cubes (issue 16).

For each fitted field (a .safetensors weights file, e.g. `inr fit`'s field.safetensors) and each
final lattice of R cells per axis, meshes the field densely on the R + 1 points per axis that MISE's
final lattice has (`dense_mesh` at resolution R + 1) and by MISE from each starting lattice given,
and records evaluations, wall time, mesh sizes, the distance between the MISE mesh and the dense
one (Chamfer-L1 of `inrcore.geometry.metrics.compare_meshes` in its units, the longest side of the
dense mesh's box, and in cells of the lattice; and the symmetric Chamfer distance between the two
vertex sets, 0 when the meshes are the same), and what MISE misses: the connected components of
the dense mesh with no MISE vertex within half a cell of theirs, with their extents in cells and
whether they are smaller than a starting cell. Writes one JSON file, rewritten after each field.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mise.py \\
        --field bunny=benchmarks/fields/bunny-siren.safetensors --field spot=runs/spot/field.safetensors \\
        --settings 256:32 512:32 512:64 --threads 1 --out benchmarks/results/mise.json

--settings takes R:START pairs: R cells per axis at the end, START at first (R / START a power of two).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, metric_figures, write_result  # noqa: E402
from range_meshing import mesh_distance  # noqa: E402


def parse_setting(text: str) -> tuple[int, int, int]:
    """R:START -> (R, START, levels); ValueError unless R = START * 2^levels."""
    cells, start = (int(part) for part in text.split(":"))
    levels = 0
    while start * 2 ** levels < cells:
        levels += 1
    if start < 1 or start * 2 ** levels != cells:
        raise ValueError(f"--settings {text}: R must be START times a power of two")
    return cells, start, levels


def missed_components(dense, mise, cell: float, start_cell: float) -> dict:
    """The dense mesh's connected components and those MISE misses (no MISE vertex within half a cell
    of any of their vertices), with the missed ones' extents in cells; and the MISE components with no
    dense vertex within half a cell (extra)."""
    import numpy as np
    from scipy.spatial import cKDTree

    def parts(mesh):
        return mesh.split(only_watertight=False) if len(mesh.faces) else []

    def far(part, tree) -> bool:
        return tree is None or bool(tree.query(part.vertices)[0].min() > 0.5 * cell)

    dense_parts, mise_parts = parts(dense), parts(mise)
    mise_tree = cKDTree(mise.vertices) if len(mise.vertices) else None
    dense_tree = cKDTree(dense.vertices) if len(dense.vertices) else None
    missed = [p for p in dense_parts if far(p, mise_tree)]
    extra = [p for p in mise_parts if far(p, dense_tree)]
    extents = [float(np.max(p.extents) / cell) for p in missed]
    return {"dense_components": len(dense_parts), "mise_components": len(mise_parts),
            "missed_components": len(missed), "missed_faces": int(sum(len(p.faces) for p in missed)),
            "missed_smaller_than_start_cell": int(sum(e * cell < start_cell for e in extents)),
            "missed_extents_cells": sorted(round(e, 2) for e in extents)[-20:],
            "extra_components": len(extra), "extra_faces": int(sum(len(p.faces) for p in extra))}


def compare(dense, mise, cell: float) -> dict:
    """Chamfer-L1 of the MISE mesh to the dense one (units of the dense box's longest side, and cells)
    and the distance between their vertex sets in cells."""
    import numpy as np

    from inrcore.geometry.metrics import compare_meshes

    metrics = compare_meshes(mise, dense)
    scale = float(np.max(dense.bounds[1] - dense.bounds[0]))
    same = (len(dense.faces) == len(mise.faces) and len(dense.vertices) == len(mise.vertices)
            and bool(np.allclose(np.sort(dense.vertices, axis=0), np.sort(mise.vertices, axis=0), atol=1e-5)))
    return {**metric_figures({k: metrics[k] for k in ("chamfer_l1", "fscore", "normal_consistency", "hausdorff")}),
            "chamfer_l1_cells": float(f"{metrics['chamfer_l1'] * scale / cell:.5g}"),
            "hausdorff_cells": float(f"{metrics['hausdorff'] * scale / cell:.5g}"),
            **mesh_distance(mise, dense, cell), "same_mesh": same}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", action="append", required=True, metavar="NAME=WEIGHTS")
    parser.add_argument("--settings", nargs="+", default=["256:32", "512:32", "512:64"], metavar="R:START")
    parser.add_argument("--bound", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/mise.json")
    args = parser.parse_args(argv)
    settings = [parse_setting(text) for text in args.settings]

    import torch

    from inrcore.fields.weights import load_field
    from inrcore.queries.mise import mise_field_mesh
    from inrcore.queries.rangemesh import dense_mesh

    torch.set_num_threads(args.threads)
    rows = []
    for item in args.field:
        name, path = item.split("=", 1)
        spec, params, _ = load_field(path)
        for cells in sorted({s[0] for s in settings}):
            cell = 2.0 * args.bound / cells
            dense, dense_stats = dense_mesh(spec, params, cells + 1, args.bound)
            rows.append({"field": name, "weights": path, "cells": cells, **dense_stats})
            print(f"{name} dense {cells}: {dense_stats['seconds']:.1f} s", file=sys.stderr)
            for _, start, levels in (s for s in settings if s[0] == cells):
                mesh, stats = mise_field_mesh(spec, params, start, levels, args.bound)
                row = {"field": name, "weights": path, "cells": cells, **stats,
                       "fewer_evaluations": dense_stats["evaluations"] / stats["evaluations"],
                       "faster": dense_stats["seconds"] / stats["seconds"],
                       **compare(dense, mesh, cell), **missed_components(dense, mesh, cell, 2.0 * args.bound / start)}
                rows.append(row)
                print(f"{name} mise {cells} from {start}: {stats['seconds']:.1f} s, "
                      f"{row['fewer_evaluations']:.1f}x fewer, chamfer {row['chamfer_l1_cells']:.3g} cells",
                      file=sys.stderr)
        write_result(args.out, "mise", argv, {"cpu_model": cpu_model(), "threads": args.threads, "rows": rows},
                     quiet=True)
    write_result(args.out, "mise", argv, {"cpu_model": cpu_model(), "threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
