"""Benchmark: neural skeletons (Clémot & Digne 2023) against Coverage Axis (Dou et al. 2022), issue 15.

Inputs, for each shape of `--shapes`:

  mesh      the analytic shape's `.mesh()` (constructors' defaults) written as .obj, or the shared
            meshes datasets/meshes/spot.obj and fandisk.obj (whose medial axes are not known).

and for each shape of `--robust-shapes` the oriented point clouds of `--variants` (.ply without
faces), made from `--cloud-points` area-weighted samples of the mesh with their face normals:

  clean     the samples as they are;
  noise0.5  Gaussian noise of 0.5% of the bounding-box diagonal added to the positions (normals kept);
  noise1    the same with 1%;
  cut       the samples with x above 0.6·max x dropped: an open cloud with a hole;
  quarter   a random quarter of the samples.

Each input is skeletonised by each method of `--methods` with `inr skeleton`'s defaults
(`skeleton_of_shape`, `SkeletonConfig()`; `--set section.key=value` changes a setting and
`--label` names such a row). The skeleton is moved back to the shape's own coordinates
(`normalisation.invert`, radii / scale) and measured in units of the bounding-box diagonal:

  medial accuracy (`medial_accuracy`, analytic shapes only): axis_mean/axis_max (skeletal points
      to the true medial axis), completeness_mean/max (axis samples to the nearest skeletal
      point), radius_error_mean; candidates_axis_mean/median: the same distance for all the
      candidates before selection;
  ball-union fidelity (`ball_union_fidelity`, against the clean mesh): two-sided Hausdorff,
      Chamfer and coverage;
  counts and topology (`skeleton_metrics`), the cover's solver record, seconds per stage.

`--timing` also times selection and linking alone at the issue's size: Coverage-Axis candidates of
the torus and capsule meshes with exactly `--timing-candidates` candidates (enough box points
drawn) on 2,000 surface samples. `--authors-step` times one step of the authors' problem size
(a 6×64 SIREN, 25k box + 25k surface points, the same loss) to show what their L-BFGS would cost.

Rows are written to `--out` after every run and rows already there with the same settings are
reused, so an interrupted run resumes; rows of other settings are kept, and "commands" lists every
invocation that wrote to the file.

    python benchmarks/skeleton_quality.py --timing --authors-step --out benchmarks/results/skeleton_quality.json
    python benchmarks/skeleton_quality.py --shapes torus --robust-shapes "" --methods coverage-axis \\
        --out /tmp/skeleton_smoke.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ANALYTIC = ("sphere", "capsule", "torus", "box", "cylinder")
MESHES = {"spot": "datasets/meshes/spot.obj", "fandisk": "datasets/meshes/fandisk.obj"}
SHAPES = ANALYTIC + tuple(MESHES)
VARIANTS = ("clean", "noise0.5", "noise1", "cut", "quarter")
METHODS = ("neural", "coverage-axis")


def shape_mesh(name: str):
    """(the mesh in its own coordinates, the analytic shape or None, the bounding-box diagonal)."""
    import numpy as np

    from inrcore.geometry.meshes import load_mesh
    from inrcore.skeleton.analytic import ANALYTIC_SHAPES

    if name in ANALYTIC_SHAPES:
        shape = ANALYTIC_SHAPES[name]()
        return shape.mesh(), shape, shape.diagonal
    mesh = load_mesh(ROOT / MESHES[name])
    return mesh, None, float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))


def write_input(name: str, variant: str, folder: Path, args) -> tuple[Path, dict]:
    """Write the input file of (shape, variant) into `folder`: its path and facts about it."""
    import numpy as np

    from inrcore.geometry.pointclouds import write_point_cloud_ply
    from inrcore.geometry.sampling import sample_surface

    mesh, _, diagonal = shape_mesh(name)
    if variant == "mesh":
        path = folder / f"{name}.obj"
        mesh.export(path)
        return path, {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces))}
    rng = np.random.default_rng(args.seed)
    points, normals = sample_surface(mesh, args.cloud_points, rng)
    facts = {}
    if variant.startswith("noise"):
        sigma = float(variant[len("noise"):]) / 100.0 * diagonal
        points = points + rng.normal(0.0, sigma, size=points.shape)
        facts["noise_sigma"] = sigma
    elif variant == "cut":
        keep = points[:, 0] <= 0.6 * points[:, 0].max()
        points, normals = points[keep], normals[keep]
    elif variant == "quarter":
        keep = np.sort(rng.choice(len(points), size=len(points) // 4, replace=False))
        points, normals = points[keep], normals[keep]
    elif variant != "clean":
        raise ValueError(f"unknown variant {variant!r}")
    path = folder / f"{name}-{variant}.ply"
    write_point_cloud_ply(path, points, normals)
    return path, {**facts, "points": int(len(points))}


def skeleton_config(method: str, args):
    from inrcore.settings import config_replace
    from inrcore.skeleton.settings import SkeletonConfig

    overrides: dict = {"method": method, "device": args.device}
    if args.steps is not None:
        overrides["field"] = {"steps": args.steps}
    for item in args.set:
        key, value = item.split("=", 1)
        *sections, last = key.split(".")
        target = overrides
        for section in sections:
            target = target.setdefault(section, {})
        target[last] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    return config_replace(SkeletonConfig(), overrides, "benchmark")


def rounded(value, digits: int = 5):
    if value is None:
        return None
    return float(f"{float(value):.{digits}g}")


def run_one(name: str, variant: str, method: str, folder: Path, args) -> dict:
    """Skeletonise one input with one method and measure the result."""
    import numpy as np

    from inrcore.skeleton.metrics import ball_union_fidelity, medial_accuracy
    from inrcore.skeleton.skeletonise import skeleton_metrics, skeleton_of_shape

    path, facts = write_input(name, variant, folder, args)
    config = skeleton_config(method, args)
    began = time.perf_counter()
    result = skeleton_of_shape(path, config)
    wall = time.perf_counter() - began
    mesh, analytic, diagonal = shape_mesh(name)
    normalisation = result.shape.normalisation
    skeleton = result.skeleton.in_input_frame(normalisation)
    figures = skeleton_metrics(result)
    cover = figures["cover"]
    row = {"shape": name, "input": variant, "method": method, "label": args.label, "input_facts": facts,
           "diagonal": rounded(diagonal), "normalisation_scale": rounded(normalisation.scale),
           "field_steps": figures.get("field_steps")}
    if analytic is not None:
        accuracy = medial_accuracy(skeleton.points, skeleton.radii, analytic.distance_to_medial_axis,
                                   analytic.medial_samples(args.axis_samples), analytic.true_radius, diagonal)
        row.update({key: rounded(value) for key, value in accuracy.items()})
        candidates = normalisation.invert(np.asarray(result.candidates.points, np.float64))
        to_axis = analytic.distance_to_medial_axis(candidates) / diagonal
        row.update(candidates_axis_mean=rounded(to_axis.mean()), candidates_axis_median=rounded(np.median(to_axis)))
    fidelity = ball_union_fidelity(skeleton.points, skeleton.radii, mesh, diagonal, n_samples=args.fidelity_samples,
                                   seed=args.seed)
    row.update({f"union_{key}": rounded(value) for key, value in fidelity.items()})
    # The share of a fresh surface sample within delta of the balls: what the cover asks of its samples.
    delta = config.cover.delta / normalisation.scale
    within = ball_union_fidelity(skeleton.points, skeleton.radii, mesh, diagonal, n_samples=args.fidelity_samples,
                                 seed=args.seed + 1, coverage_tolerance=delta / diagonal)["coverage"]
    row["union_coverage_delta"] = rounded(within)
    row.update({key: figures[key] for key in ("balls", "edges", "faces", "components", "betti1", "euler",
                                              "isolated", "candidates", "surface_samples", "uncovered")})
    if analytic is not None:
        row["true_betti1"] = analytic.betti1
    row["cover"] = {"method": cover["method"], "status": cover["status"], "message": cover["message"],
                    "gap": rounded(cover["gap"]), "objective": cover["objective"],
                    "dual_bound": cover["dual_bound"], "candidates_after_presolve": cover["candidates_after_presolve"],
                    "rows_after_presolve": cover["rows_after_presolve"], "repaired": cover["repaired"]}
    seconds = {stage: round(value, 2) for stage, value in result.seconds.items()}
    row["seconds"] = {**seconds, "total": round(sum(result.seconds.values()), 2)}
    row["wall_seconds"] = round(wall, 2)
    return row


def selection_timing(name: str, args) -> dict:
    """Selection and linking alone on Coverage-Axis candidates of the mesh: 2,000 surface samples and
    exactly `--timing-candidates` candidates."""
    from inrcore.settings import config_replace
    from inrcore.skeleton.candidates import coverage_axis_candidates
    from inrcore.skeleton.cover import select_balls
    from inrcore.skeleton.inputs import read_skeleton_input
    from inrcore.skeleton.linking import skeleton_simplices

    config = skeleton_config("coverage-axis", args)
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = write_input(name, "mesh", Path(tmp), args)
        shape = read_skeleton_input(path, config.n_input, config.extent, seed=config.candidates.seed)
    n_box = config.candidates.n_box
    while True:  # enough box points that at least the wanted number fall inside
        candidates_config = config_replace(config.candidates, {"n_box": n_box,
                                                               "max_candidates": args.timing_candidates})
        candidates = coverage_axis_candidates(shape, config.trace, candidates_config)
        if len(candidates.points) >= args.timing_candidates or n_box > 10**7:
            break
        n_box *= 2
    began = time.perf_counter()
    cover = select_balls(candidates.surface, candidates.points, candidates.radii, config.cover)
    selection = time.perf_counter() - began
    began = time.perf_counter()
    links = skeleton_simplices(candidates.points[cover.selected], candidates.radii[cover.selected],
                               candidates.surface, config.cover.delta)
    linking = time.perf_counter() - began
    return {"shape": name, "surface_samples": int(len(candidates.surface)), "candidates": int(len(candidates.points)),
            "box_points": n_box, "selection_seconds": round(selection, 3), "linking_seconds": round(linking, 3),
            "total_seconds": round(selection + linking, 3), "selected": int(len(cover.selected)),
            "cover_method": cover.method, "status": cover.status, "message": cover.message,
            "gap": rounded(cover.gap), "candidates_after_presolve": cover.candidates_after_presolve,
            "rows_after_presolve": cover.rows_after_presolve, "edges": int(len(links.edges)),
            "faces": int(len(links.faces))}


def authors_step_cost(args, steps: int = 3) -> dict:
    """Seconds per optimiser step at the authors' size: a 6×64 SIREN, 25k box + 25k surface points
    (torus samples), the same loss with the TV term (no learning points); one step is one loss and
    gradient evaluation, the unit an L-BFGS iteration spends at least once."""
    import numpy as np

    from inrcore.geometry.meshes import normalise_mesh
    from inrcore.geometry.sampling import sample_surface
    from inrcore.settings import config_replace
    from inrcore.skeleton.settings import SkeletonFieldConfig
    from inrcore.skeleton.tvfield import fit_skeleton_field

    mesh, _, _ = shape_mesh("torus")
    mesh, _ = normalise_mesh(mesh, 0.9)
    points, normals = sample_surface(mesh, 25_000, np.random.default_rng(args.seed))
    results = {}
    for label, layers, box, surface in (("authors 6x64, 25k+25k", 6, 25_000, 25_000),
                                        ("default 4x64, 2048+2048", 4, 2048, 2048)):
        config = config_replace(SkeletonFieldConfig(), {
            "network": {"layers": layers}, "steps": steps, "batch_box": box, "batch_surface": surface,
            "n_learning": 0, "start_steps": 0, "log_every": steps}, "benchmark")
        began = time.perf_counter()
        fit = fit_skeleton_field(points, normals, config, args.device)
        results[label] = {"steps": fit.steps, "seconds_per_step": round((time.perf_counter() - began) / fit.steps, 3)}
    return results


def settings_of(args) -> dict:
    keys = ("seed", "cloud_points", "axis_samples", "fidelity_samples", "steps", "set", "device")
    return {key: getattr(args, key) for key in keys}


def fmt(value, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table; distances in units of the diagonal. β2 = euler − components + β1
    (the linked complex has no tetrahedra): closed shells of triangles, 0 on a true medial axis here."""
    lines = ["| shape | input | method | label | axis mean | axis max | complete mean | radius err | union H "
             "| union chamfer | balls | edges | faces | comp. | β1 | β2 | isol. | uncov. | cand. axis | cover "
             "| total s |",
             "|" + "---|" * 21]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['input']} | {r['method']} | {r['label']} | failed: {r['error'][:80]} |"
                         + " |" * 16)
            continue
        cover = r["cover"]
        lines.append(
            f"| {r['shape']} | {r['input']} | {r['method']} | {r['label']} | {fmt(r.get('axis_mean'))} "
            f"| {fmt(r.get('axis_max'))} | {fmt(r.get('completeness_mean'))} | {fmt(r.get('radius_error_mean'))} "
            f"| {fmt(r['union_hausdorff'])} | {fmt(r['union_chamfer'])} | {r['balls']} | {r['edges']} | {r['faces']} "
            f"| {r['components']} | {r['betti1']} | {r['euler'] - r['components'] + r['betti1']} "
            f"| {r['isolated']} | {r['uncovered']} "
            f"| {fmt(r.get('candidates_axis_mean'))} | {cover['method']} {cover['status']} "
            f"| {r['seconds']['total']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="mesh inputs, comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--robust-shapes", default="torus,capsule",
                        help="shapes whose point-cloud variants are run, comma-separated (analytic ones)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    parser.add_argument("--steps", type=int, default=None, help="field.steps (default: the library's)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a SkeletonConfig setting changed, e.g. cover.delta=0.02 (repeatable)")
    parser.add_argument("--label", default="default", help="names the rows of this run's settings")
    parser.add_argument("--cloud-points", type=int, default=20_000)
    parser.add_argument("--axis-samples", type=int, default=2000, help="medial_samples(n) of the analytic axes")
    parser.add_argument("--fidelity-samples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: two threads on two shared cores ran 20x slower)")
    parser.add_argument("--timing", action="store_true", help="time selection + linking at 2,000 x 5,000")
    parser.add_argument("--timing-candidates", type=int, default=5000)
    parser.add_argument("--authors-step", action="store_true", help="time one step at the authors' size")
    parser.add_argument("--out", required=True, help="the result JSON (rows in it with the same settings are reused)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    split = lambda text: [item for item in text.split(",") if item]  # noqa: E731
    args.shapes, args.robust_shapes = split(args.shapes), split(args.robust_shapes)
    args.variants, args.methods = split(args.variants), split(args.methods)
    unknown = (sorted(set(args.shapes) - set(SHAPES)) + sorted(set(args.robust_shapes) - set(ANALYTIC))
               + sorted(set(args.variants) - set(VARIANTS)) + sorted(set(args.methods) - set(METHODS)))
    if unknown:
        parser.error(f"unknown shapes, variants or methods: {unknown}")
    skeleton_config("neural", args)  # a bad --set fails here, before any work

    settings = settings_of(args)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    rows = [r for r in previous.get("runs", []) if r.get("settings") == settings]
    others = [r for r in previous.get("runs", []) if r.get("settings") != settings]
    extras = {key: previous[key] for key in ("selection_timing", "authors_step") if key in previous}
    this_command = "python " + shlex.join([sys.argv[0]] + list(sys.argv[1:] if argv is None else argv))
    extras["commands"] = [c for c in previous.get("commands", [previous.get("command")]) if c] + [this_command]
    done = {(r["shape"], r["input"], r["method"], r["label"]) for r in rows}
    jobs = [(s, "mesh") for s in args.shapes] + [(s, v) for s in args.robust_shapes for v in args.variants]

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"benchmark": "skeleton_quality", "runs": others + rows, **extras,
                                   "machine": machine()}, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        for name, variant in jobs:
            for method in args.methods:
                if (name, variant, method, args.label) in done:
                    continue
                try:
                    row = run_one(name, variant, method, Path(tmp), args)
                except Exception as exc:  # a failed skeleton is a result too
                    row = {"shape": name, "input": variant, "method": method, "label": args.label,
                           "error": f"{type(exc).__name__}: {exc}"}
                row["settings"] = settings
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
                save()
    if args.timing:
        extras["selection_timing"] = [selection_timing(name, args) for name in ("torus", "capsule")]
        print(json.dumps(extras["selection_timing"]), file=sys.stderr, flush=True)
        save()
    if args.authors_step:
        extras["authors_step"] = authors_step_cost(args)
        print(json.dumps(extras["authors_step"]), file=sys.stderr, flush=True)
    everything = others + rows
    order = {key: i for i, key in enumerate(
        (s, v, m) for s in SHAPES for v in ("mesh",) + VARIANTS for m in METHODS)}
    everything.sort(key=lambda r: (order[(r["shape"], r["input"], r["method"])], r["label"]))
    write_result(args.out, "skeleton_quality", argv, {"runs": everything, **extras, "table": table(everything)},
                 quiet=True)
    print(table(everything))
    for timing in extras.get("selection_timing", []):
        print(f"selection+linking {timing['shape']}: {timing['surface_samples']} samples x {timing['candidates']} "
              f"candidates: selection {timing['selection_seconds']} s, linking {timing['linking_seconds']} s, "
              f"{timing['selected']} selected, {timing['cover_method']} status {timing['status']}")
    for label, cost in extras.get("authors_step", {}).items():
        print(f"one step, {label}: {cost['seconds_per_step']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
