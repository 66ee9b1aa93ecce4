"""`inr mesh`, `inr isopoints` and `inr render`: queries on one fitted field, here and now.

MODEL is a weights file written by inrflow (`inr fit`'s field.safetensors, or any
`inrcore.fields.weights.save_field` file) or a registry URI models:/<name>@<alias>, read from the
MLflow tracking server given by --tracking-uri (default: $MLFLOW_TRACKING_URI). Everything is
in the field's own coordinates (the normalised frame the shape was fitted in). `inr mesh` shows
its stages (loading, meshing, writing) on a progress line on standard error unless --quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from inrcore.files import write_json_atomic
from inrcore.queries.settings import MiseConfig, RangeMeshConfig

from .helptext import add_command, add_output_switches
from .options import add_setting_options, settings_from_options
from .progress import StageLine


MESH_STAGES = ("loading", "meshing", "writing")
MESH_SETTINGS = ("resolution", "leaf", "mode", "max_symbols", "fallback")  # of RangeMeshConfig
# The share of the "meshing" stage each step of a method takes on the bar.
MESHING_STEPS = {"dense": {"meshing": (0.0, 1.0)},
                 "range": {"bounding": (0.0, 0.4), "sampling": (0.4, 0.6), "meshing": (0.6, 1.0)},
                 "mise": {"refining": (0.0, 0.7), "meshing": (0.7, 1.0)}}
STEP_WORDS = {"bounding": "bounding boxes, level", "sampling": "sampling the uncertain leaf blocks",
              "refining": "refining, level", "meshing": "marching cubes, block"}
FIELD_NOTE = ("MODEL: a weights file (e.g. inr fit's field.safetensors) or models:/<name>@<alias> from the MLflow "
              "registry at --tracking-uri (default $MLFLOW_TRACKING_URI). Coordinates are the field's own.")


def add_query_commands(commands) -> None:
    """Register mesh, isopoints and render on the `inr` subcommand parser."""
    mesh = add_command(
        commands, "mesh", "mesh a fitted field: dense, range-bound or MISE marching cubes",
        "inr mesh runs/spot/field.safetensors --out range.ply",
        "Extract the zero level set of a field as a triangle mesh. --method dense evaluates every point of "
        "a resolution^3 lattice; --method range bounds boxes of the lattice by affine arithmetic and "
        "samples only the blocks it cannot certify, giving the same mesh with far fewer evaluations. "
        "--method mise (Mescheder et al. 2019) evaluates a coarse lattice of --start cells per axis and "
        "refines only cells whose corners (or a neighbour's) disagree in sign, up to --resolution cells per "
        "axis: far fewer evaluations on any field, but parts thinner than a starting cell may be missed "
        "(not a certificate, unlike range). Writes the mesh and, next to it, metrics.json (evaluations, "
        "seconds, vertices, faces). " + FIELD_NOTE)
    _model_arguments(mesh)
    mesh.add_argument("--method", choices=("dense", "range", "mise"), default="range", help="default: range")
    mesh.add_argument("--out", required=True, metavar="MESH", help="mesh file to write (.ply, .obj, .stl, .off)")
    mesh.add_argument("--metrics", metavar="JSON", help="where to write the metrics (default: metrics.json next to MESH)")
    add_setting_options(mesh, RangeMeshConfig, {
        "resolution": "lattice points per axis; mise: cells per axis of the final lattice (R + 1 points), "
                      "--start times a power of two",
        "leaf": "range: cells per leaf block edge",
        "mode": "range: arithmetic",
        "max_symbols": "range: affine noise symbols kept per form; 0 or more, -1 keeps all",
        "fallback": "range: first bound a few hundred boxes per level and mesh densely when range analysis is "
                    "predicted to cost more than the dense lattice (metrics say \"fallback\": true); "
                    "--no-fallback always runs the range plan",
    }, metavars={"resolution": "R", "max_symbols": "K"})
    add_setting_options(mesh, MiseConfig, {"start": "mise: cells per axis of the starting lattice"},
                        metavars={"start": "S"})
    add_output_switches(mesh, "the metrics")

    iso = add_command(
        commands, "isopoints", "sample points with normals on a fitted field's surface",
        "inr isopoints runs/spot/field.safetensors --out iso.ply",
        "Iso-points (Wang Yifan et al. 2021): start at the sign changes of a coarse grid, project by "
        "Newton steps onto the zero level set, resample uniformly and upsample towards edges. Writes a PLY "
        "point cloud with normals. " + FIELD_NOTE)
    _model_arguments(iso)
    iso.add_argument("--n", type=int, default=20000, help="about how many points (default 20000)")
    iso.add_argument("--out", required=True, metavar="POINTS", help="PLY file to write")
    iso.add_argument("--seed", type=int, default=0)

    render = add_command(
        commands, "render", "depth and normal pictures of a fitted field, by ray casting",
        "inr render runs/spot/field.safetensors --out render.png",
        "Render the zero level set of a field by range-bound ray casting (by frusta of pixel tiles, or "
        "per ray) or by sphere tracing (true SDFs only). Writes one PNG with the depth image and the "
        "normal image side by side (or one of them, --image). " + FIELD_NOTE)
    _model_arguments(render)
    render.add_argument("--out", required=True, metavar="PNG")
    render.add_argument("--method", choices=("frusta", "ray", "sphere"), default="frusta", help="default: frusta")
    render.add_argument("--image", choices=("both", "depth", "normals"), default="both")
    render.add_argument("--size", type=int, default=512, help="image height and width in pixels (default 512)")
    render.add_argument("--azimuth", type=float, default=35.0)
    render.add_argument("--elevation", type=float, default=25.0)
    render.add_argument("--perspective", action="store_true", help="a pinhole camera (default orthographic)")
    render.add_argument("--mode", choices=("affine", "interval"), default="affine", help="range casting's arithmetic")
    render.add_argument("--max-symbols", type=int, default=16, metavar="K",
                        help="range casting: affine noise symbols kept per form; -1 keeps all (default 16)")


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="weights file or models:/<name>@<alias>")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for a models:/ MODEL")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to compute (default: auto, CUDA when present)")
    parser.add_argument("--bound", type=float, default=1.0, help="the field's domain is [-bound, bound]^3 (default 1)")
    parser.add_argument("--shape", metavar="ID", default=None,
                        help="when MODEL is a DeepSDF shape space (inr deepsdf train): the member to use")


QUERY_COMMANDS = ("mesh", "isopoints", "render")


def query_command(args: argparse.Namespace) -> int:
    """Run one query command. Exit 0, 2 (bad arguments or MODEL), or 1 (the field has no surface)."""
    from inrcore.errors import InrflowError

    stages = StageLine("inr mesh", MESH_STAGES, sys.stderr, quiet=args.command != "mesh" or args.quiet)
    try:
        _check_arguments(args)
        stages.show("loading", f"loading {args.model}")
        spec, params, device = load_model(args.model, args.tracking_uri, args.device, args.shape)
    except (ValueError, InrflowError, RuntimeError, OSError) as exc:
        stages.close()
        print(f"inr {args.command}: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            if args.command == "mesh":
                record = _mesh(args, spec, params, device, stages)
            else:
                record = {"isopoints": _isopoints, "render": _render}[args.command](args, spec, params, device)
        finally:
            stages.close()
    except OSError as exc:
        print(f"inr {args.command}: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(record, indent=2))
    return 0 if record.get("ok", True) else 1


def _check_arguments(args: argparse.Namespace) -> None:
    if args.bound <= 0:
        raise ValueError(f"--bound must be positive, got {args.bound}")
    if args.command == "mesh":
        args.range_settings = settings_from_options(RangeMeshConfig, args, MESH_SETTINGS, bound=args.bound)
        if args.method == "mise":
            args.mise_settings = mise_settings(args)
        if Path(args.out).suffix.lower() not in (".ply", ".obj", ".stl", ".off"):
            raise ValueError(f"{args.out}: the mesh file must end in .ply, .obj, .stl or .off")
    if args.command == "isopoints":
        if args.n < 1:
            raise ValueError(f"--n must be at least 1, got {args.n}")
        if Path(args.out).suffix.lower() != ".ply":
            raise ValueError(f"{args.out}: iso-points are written as PLY; the file must end in .ply")
    if args.command == "render" and args.size < 1:
        raise ValueError(f"--size must be positive, got {args.size}")
    if args.command == "render" and args.max_symbols < -1:
        raise ValueError(f"--max-symbols must be -1 (all) or more, got {args.max_symbols}")


def mise_settings(args: argparse.Namespace) -> MiseConfig:
    """MISE's settings from --start and --resolution (the final cells per axis, start * 2^levels);
    ValueError when --resolution is not --start times a power of two."""
    levels, cells = 0, args.start
    while args.start > 0 and cells < args.resolution:
        cells, levels = cells * 2, levels + 1
    if args.start < 1 or cells != args.resolution:
        raise ValueError(f"--method mise: --resolution ({args.resolution} cells per axis) must be --start "
                         f"({args.start}) times a power of two, e.g. {max(args.start, 1) * 2 ** max(levels, 1)}")
    return settings_from_options(MiseConfig, args, ("start",), bound=args.bound, levels=levels)


def load_model(model: str, tracking_uri, device_name: str = "auto", shape: Optional[str] = None):
    """(spec, params on the device, device) of a weights file or a models:/ registry URI; of a shape
    space's member `shape` when MODEL is a DeepSDF shape space (which then needs one)."""

    from inrcore.device import resolve_device
    from inrcore.fields.weights import load_field

    device = resolve_device(device_name)
    if model.startswith("models:/"):
        tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not tracking_uri:
            raise ValueError(f"{model}: a registry URI needs --tracking-uri (or MLFLOW_TRACKING_URI), e.g. "
                             "sqlite:///runs/demo/mlflow.db")
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from tasks.registry import load_registered_field

        try:
            spec, params, metadata, _ = load_registered_field(tracking_uri, model)
        except Exception as exc:  # MLflow raises its own exception types for missing models or aliases
            raise ValueError(f"{model}: cannot load it from {tracking_uri}: {exc}") from exc
    else:
        spec, params, metadata = load_field(model)
    spec, params = member_if_shape_space(model, spec, params, metadata, shape)
    return spec, {k: v.to(device) for k, v in params.items()}, device


def member_if_shape_space(model: str, spec, params, metadata: dict, shape: Optional[str]):
    """A shape space's member `shape` as a plain field; any other field as it is (then `shape` must be None)."""
    from inrcore.shapespace.space import is_shape_space, shape_space_of

    if not is_shape_space(metadata):
        if shape is not None:
            raise ValueError(f"{model}: --shape is for DeepSDF shape spaces; this is a single field")
        return spec, params
    space = shape_space_of(spec, params, metadata, model)
    if shape is None:
        raise ValueError(f"{model}: a DeepSDF shape space of {len(space.shape_ids)} shapes; choose one with "
                         f"--shape ID (e.g. --shape {space.shape_ids[0]})")
    return space.member(shape)


def _mesh(args, spec, params, device, stages: StageLine) -> dict:
    from inrcore.files import write_atomic
    from inrcore.queries.mise import mise_field_mesh
    from inrcore.queries.rangemesh import dense_mesh, range_mesh

    settings = args.range_settings
    lattice = f"{settings.resolution}^3 lattice on {device}"
    stages.show("meshing", {
        "dense": f"meshing densely, {lattice}",
        "range": f"bounding and meshing, {lattice}, leaf blocks of {settings.leaf}^3 cells",
        "mise": f"refining {args.start}^3 cells to {settings.resolution}^3 cells on {device}"}[args.method])
    def progress(step: str, done: int, total: int) -> None:
        low, high = MESHING_STEPS[args.method][step]
        count = f" {done}/{total}" if step != "sampling" else ""
        stages.show("meshing", f"{STEP_WORDS[step]}{count}", low + (high - low) * done / max(total, 1))

    if args.method == "dense":
        mesh, stats = dense_mesh(spec, params, settings.resolution, settings.bound, device, on_progress=progress)
    elif args.method == "mise":
        mise = args.mise_settings
        mesh, stats = mise_field_mesh(spec, params, mise.start, mise.levels, mise.bound, device, mise.batch_points,
                                      on_level=lambda done, total: progress("refining", done, total),
                                      on_block=lambda done, total: progress("meshing", done, total))
    else:
        mesh, stats = range_mesh(spec, params, settings, device, on_progress=progress)
    dense_instead = " (densely: range analysis would cost more)" if stats.get("fallback") else ""
    stages.show("writing", f"writing {len(mesh.faces)} faces{dense_instead} to {args.out}")
    out = write_atomic(args.out, mesh.export)
    metrics_path = Path(args.metrics) if args.metrics else out.parent / "metrics.json"
    record = {**stats, "mesh": str(out), "device": str(device), "ok": len(mesh.faces) > 0}
    write_json_atomic(metrics_path, record, sort_keys=False)
    stages.done(f"{len(mesh.vertices)} vertices, {len(mesh.faces)} faces (meshed in {stats['seconds']:.1f}s) "
                f"-> {out}")
    return {**record, "metrics": str(metrics_path)}


def _isopoints(args, spec, params, device) -> dict:
    import torch

    from inrcore.fields.gradients import field_of_network
    from inrcore.geometry.pointclouds import write_point_cloud_ply
    from inrcore.queries.isopoints import extract_isopoints

    start = time.perf_counter()
    iso = extract_isopoints(field_of_network(spec, params), args.n, bound=args.bound, device=device,
                            generator=torch.Generator().manual_seed(args.seed))
    points, normals = iso.points.detach().cpu().numpy(), iso.normals.detach().cpu().numpy()
    write_point_cloud_ply(args.out, points, normals)
    return {"points": str(args.out), "count": int(len(points)), "requested": args.n,
            "seconds": time.perf_counter() - start, "device": str(device), "ok": len(points) > 0}


def _render(args, spec, params, device) -> dict:
    from inrcore.geometry.images import side_by_side, write_png
    from inrcore.queries.frusta import (
        depth_image,
        normal_image,
        orthographic_camera,
        perspective_camera,
        render_field,
    )
    from inrcore.queries.settings import CastOptions

    camera_of = perspective_camera if args.perspective else orthographic_camera
    camera = camera_of((args.size, args.size), args.azimuth, args.elevation, args.bound)
    options = CastOptions(mode=args.mode, max_symbols=None if args.max_symbols == -1 else args.max_symbols)
    result = render_field(spec, params, camera, args.method, args.bound, options)
    images = {"depth": depth_image(result.depth, result.hit), "normals": normal_image(result.normals, result.hit)}
    image = side_by_side([images["depth"], images["normals"]]) if args.image == "both" else images[args.image]
    write_png(image, args.out)
    return {"image": str(args.out), **result.stats, "device": str(device), "ok": result.stats["hits"] > 0}
