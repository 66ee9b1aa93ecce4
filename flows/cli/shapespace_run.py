"""The bodies of the shape-space commands (`flows.cli.shapespace` parses them): each reads its inputs,
calls `inrcore.shapespace`, writes files into --out and returns the metrics it printed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _say(args):
    return (lambda text: None) if getattr(args, "quiet", False) else (lambda text: print(text, file=sys.stderr, flush=True))


def generate(args: argparse.Namespace) -> int:
    from inrcore.shapespace.procedural import write_collection
    from inrcore.shapespace.settings import GeneratorConfig

    from .options import settings_from_options

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    try:
        config = settings_from_options(GeneratorConfig, args, ("per_family", "test_fraction", "seed"),
                                       families=families)
    except ValueError as exc:  # names the option: --per-family: must be positive, got 0
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    manifest = write_collection(args.out, config, name=args.name)
    print(json.dumps({"manifest": str(manifest), "shapes": len(families) * config.per_family}, indent=2))
    return 0


def _training_shapes(args, config, say):
    from inrcore.errors import ConfigError, ShapeError
    from inrcore.shapespace.oneshot import sample_file

    from ..manifest import read_manifest

    manifest = read_manifest(args.manifest)
    entries = manifest.split("train")
    if not entries:
        raise ConfigError(f"{args.manifest}: the train split is empty ({len(manifest.shapes)} shapes, all held out)")
    shapes, failed = [], {}
    for i, entry in enumerate(entries):
        say(f"sampling {i + 1}/{len(entries)}: {entry.shape_id}")
        try:
            shapes.append((entry.shape_id, sample_file(entry.path, config)))
        except ShapeError as exc:  # one bad shape does not stop the collection
            failed[entry.shape_id] = str(exc)
            say(f"inr: skipped {exc}")
    if not shapes:
        raise ConfigError(f"{args.manifest}: none of the {len(entries)} training shapes could be used")
    return shapes, failed


def deepsdf_train(args, config) -> dict:
    from inrcore.device import resolve_device
    from inrcore.files import write_json_atomic
    from inrcore.geometry.images import image_grid, write_png
    from inrcore.geometry.render import render_mesh
    from inrcore.shapespace.oneshot import train_on_files
    from inrcore.shapespace.space import load_shape_space, mesh_field, save_shape_space

    say = _say(args)
    shapes, failed = _training_shapes(args, config, say)
    device = resolve_device(config.device)
    log = lambda e: say(f"epoch {e['epoch']:>5}  loss {e['loss']:.5f}  {e['seconds']:.0f}s")  # noqa: E731
    result = train_on_files([s for _, s in shapes], config, device, on_log=log)
    out = Path(args.out)
    ids = [sid for sid, _ in shapes]
    save_shape_space(out / "model.safetensors", result, ids, {"training": config.training.__class__.__name__})
    space = load_shape_space(out / "model.safetensors")
    pictures = [render_mesh(mesh_field(*space.member(sid), config.mesh, device)[0]) for sid in ids[:8]]
    if pictures:
        write_png(image_grid(pictures, columns=4), out / "members.png")
    metrics = {"shapes": len(ids), "failed": failed, "epochs": result.epochs, "steps": result.steps,
               "seconds": result.seconds, "loss": result.history[-1]["loss"] if result.history else None,
               "history": result.history, "model": str(out / "model.safetensors")}
    write_json_atomic(out / "metrics.json", metrics)
    return {k: v for k, v in metrics.items() if k != "history"}


def _model_file(args, data_dir: str) -> str:
    """MODEL as a local weights file: itself, or downloaded from the registry for models:/<name>@<alias>
    (`data_dir`: the name in `tasks.registry` of the model's data folder; MLflow is loaded only then)."""
    if not args.model.startswith("models:/"):
        return args.model
    import os

    from inrcore.errors import ConfigError

    tracking = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking:
        raise ConfigError(f"{args.model}: a registry URI needs --tracking-uri (or MLFLOW_TRACKING_URI)")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from tasks import registry

    try:
        return str(registry.registered_weights(tracking, args.model, getattr(registry, data_dir))[0])
    except Exception as exc:  # MLflow raises its own exception types for missing models or aliases
        raise ConfigError(f"{args.model}: cannot load it from {tracking}: {exc}") from exc


def _space_of(args):
    from inrcore.fields.weights import load_field
    from inrcore.shapespace.space import shape_space_of

    spec, params, metadata = load_field(_model_file(args, "FIELD_DIR"))
    return shape_space_of(spec, params, metadata, args.model)


def deepsdf_fit(args, config) -> dict:
    """`inr deepsdf reconstruct` and `inr deepsdf complete`."""
    from inrcore.device import resolve_device
    from inrcore.files import write_atomic, write_json_atomic
    from inrcore.geometry.images import write_png
    from inrcore.geometry.render import render_mesh
    from inrcore.shapespace.autodecoder import TargetSamples
    from inrcore.shapespace.oneshot import in_input_frame, reconstruct, sample_file

    space = _space_of(args)
    device = resolve_device(config.device)
    out = Path(args.out)
    if args.action == "reconstruct":
        shape = sample_file(args.input, config)
        targets = TargetSamples(shape.samples.points, shape.samples.sdf)
        reference, normalisation, extra = shape.mesh, shape.normalisation, {"input": str(args.input)}
    else:
        targets, reference, normalisation, extra = _scan_input(args, config, out)
    mesh, metrics = reconstruct(space, reference, targets, config, device)
    metrics.update(extra)
    if len(mesh.faces):
        shown = in_input_frame(mesh, normalisation) if normalisation is not None else mesh
        write_atomic(out / "mesh.ply", lambda tmp: shown.export(tmp, file_type="ply"))
    write_json_atomic(out / "metrics.json", metrics)
    if len(mesh.faces):
        write_png(render_mesh(mesh), out / "mesh.png")
    return metrics


def _scan_input(args, config, out: Path):
    """`inr deepsdf complete`'s SCAN: a depth-scan .npz (`inrcore.shapespace.scans.read_depth_scan`), measured
    against --reference when given, or a mesh scanned from a seeded view (its scan written as DIR/scan.npz),
    measured against the whole mesh. (targets, reference or None, normalisation or None, metrics entries);
    DIR/scan.ply holds the scan's points in the input's coordinates."""
    from inrcore.errors import ConfigError
    from inrcore.files import write_atomic
    from inrcore.shapespace.oneshot import scan_of, scan_targets
    from inrcore.shapespace.samples import load_normalised_mesh
    from inrcore.shapespace.scans import read_depth_scan, write_depth_scan

    if str(args.scan).lower().endswith(".npz"):
        if args.noise:
            raise ConfigError(f"--noise adds depth noise to a scan made from a mesh; {args.scan} is a scan already")
        scan, normalisation = read_depth_scan(args.scan)
        targets = scan_targets(scan, config, args.seed)
        reference = _in_scan_frame(args.reference, normalisation) if args.reference else None
        extra = {"scan": str(args.scan), "reference": args.reference}
    else:
        mesh, normalisation = load_normalised_mesh(args.scan, config.sampling.extent)
        scan, targets = scan_of(mesh, str(args.scan), config, args.noise, args.seed)
        reference = mesh
        write_depth_scan(out / "scan.npz", scan, normalisation)
        extra = {"scan": str(args.scan), "noise": args.noise, "seed": args.seed,
                 "view": {"azimuth_deg": scan.azimuth_deg, "elevation_deg": scan.elevation_deg}}
    points = scan.points()
    shown = normalisation.invert(points) if normalisation is not None else points
    write_atomic(out / "scan.ply", lambda tmp: _point_cloud(shown).export(tmp, file_type="ply"))
    return targets, reference, normalisation, {**extra, "scan_points": int(len(points))}


def _in_scan_frame(path, normalisation):
    """The mesh file at `path`, in the same coordinates as the scan file, moved into the normalised frame by
    the scan's normalisation (left as it is when the scan has none)."""
    from inrcore.geometry.meshes import load_mesh

    mesh = load_mesh(path)
    if normalisation is not None:
        mesh.vertices = normalisation.apply(mesh.vertices)
    return mesh


def deepsdf_interpolate(args, config) -> dict:
    from inrcore.device import resolve_device
    from inrcore.errors import ConfigError
    from inrcore.files import write_atomic, write_json_atomic
    from inrcore.geometry.images import side_by_side, write_png
    from inrcore.geometry.render import render_mesh
    from inrcore.shapespace.space import interpolation_meshes

    if args.count < 2:
        raise ConfigError(f"--count must be at least 2, got {args.count}")
    space = _space_of(args)
    meshes = interpolation_meshes(space, args.first, args.second, args.count, config.mesh, resolve_device(config.device))
    out = Path(args.out)
    for k, mesh in enumerate(meshes):
        if len(mesh.faces):
            write_atomic(out / f"step-{k}.ply", lambda tmp, m=mesh: m.export(tmp, file_type="ply"))
    write_png(side_by_side([render_mesh(m) for m in meshes if len(m.faces)]), out / "strip.png")
    metrics = {"first": args.first, "second": args.second, "count": args.count,
               "faces": [int(len(m.faces)) for m in meshes]}
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def _point_cloud(points):
    import trimesh

    return trimesh.PointCloud(points)


def occnet_train(args, config) -> dict:
    from inrcore.device import resolve_device
    from inrcore.files import write_json_atomic
    from inrcore.shapespace.occnet import save_occnet
    from inrcore.shapespace.occnet_training import train_occnet
    from inrcore.shapespace.samples import occupancy_shape

    say = _say(args)
    shapes, failed = _training_shapes(args, config, say)
    data = [occupancy_shape(s.samples) for _, s in shapes]
    log = lambda e: say(f"step {e['step']:>6}  loss {e['loss']:.5f}  {e['seconds']:.0f}s")  # noqa: E731
    device = resolve_device(config.device)
    network = config.occnet.for_device(device.type)
    result = train_occnet(data, network, device, on_log=log)
    out = Path(args.out)
    save_occnet(out / "model.safetensors", result.params, result.config, {"shapes": [sid for sid, _ in shapes]})
    metrics = {"shapes": len(shapes), "failed": failed, "steps": result.steps, "seconds": result.seconds,
               "bfloat16_passes": result.bfloat16,
               "loss": result.history[-1]["loss"] if result.history else None, "history": result.history,
               "model": str(out / "model.safetensors"), "threshold": result.config.threshold,
               **({"statistics_seconds": result.statistics_seconds} if result.config.statistics_batches else {}),
               **({"threshold_iou": {f"{t:.2f}": v for t, v in result.thresholds.items()}}
                  if result.thresholds else {})}
    write_json_atomic(out / "metrics.json", metrics)
    return {k: v for k, v in metrics.items() if k != "history"}


def occnet_reconstruct(args, config) -> dict:
    import numpy as np

    from inrcore.device import resolve_device
    from inrcore.files import write_atomic, write_json_atomic
    from inrcore.geometry.images import write_png
    from inrcore.geometry.meshes import normalisation_for_points
    from inrcore.geometry.pointclouds import POINT_SUFFIXES, load_point_cloud
    from inrcore.geometry.render import render_mesh
    from inrcore.shapespace.occnet import load_occnet, occnet_mesh, occupancy_iou
    from inrcore.shapespace.occnet_training import noisy_cloud
    from inrcore.shapespace.oneshot import in_input_frame, sample_file, surface_metrics
    from inrcore.shapespace.settings import EVALUATION_FIELDS, evaluated_with

    from .overrides import overrides_from_set

    params, occ, _ = load_occnet(_model_file(args, "OCCNET_DIR"))
    occ = evaluated_with(occ, config.occnet, overrides_from_set(args.set).get("occnet", {}))  # where --set names them
    device = resolve_device(config.device)
    out = Path(args.out)
    metrics: dict = {"input": str(args.points), "threshold": occ.threshold,
                     **{k: getattr(occ, k) for k in EVALUATION_FIELDS}}
    if Path(args.points).suffix.lower() in POINT_SUFFIXES and not _has_faces(args.points):
        points = np.asarray(load_point_cloud(args.points)[0], np.float64)
        normalisation = normalisation_for_points(points, config.sampling.extent)
        cloud, shape = normalisation.apply(points).astype(np.float32), None
    else:
        shape = sample_file(args.points, config)
        normalisation = shape.normalisation
        cloud = noisy_cloud(shape.samples.surface, occ.n_points, occ.noise, np.random.default_rng(config.sampling.seed))
        metrics["iou"] = occupancy_iou(params, occ, cloud, shape.samples.occupancy_points, shape.samples.inside, device)
    mesh, stats = occnet_mesh(params, occ, cloud, device, start=config.mesh.start, levels=config.mesh.levels,
                              bound=config.mesh.bound)
    metrics.update({"cloud_points": int(len(cloud)), "mesh_evaluations": int(stats.get("evaluations", 0))})
    if shape is not None:
        metrics.update(surface_metrics(mesh, shape.mesh, config))
    if len(mesh.faces):
        write_atomic(out / "mesh.ply", lambda tmp: in_input_frame(mesh, normalisation).export(tmp, file_type="ply"))
    write_json_atomic(out / "metrics.json", metrics)
    if len(mesh.faces):
        write_png(render_mesh(mesh), out / "mesh.png")
    return metrics


def _has_faces(path) -> bool:
    if Path(path).suffix.lower() != ".ply":
        return False
    import trimesh

    return isinstance(trimesh.load(path, process=False), trimesh.Trimesh)


def pipeline(args: argparse.Namespace) -> int:
    from inrcore.errors import ConfigError

    from ..manifest import read_manifest
    from ..sizes import check_manifest_sizes
    from .overrides import overrides_from_set
    from .prefect_env import report_prefect_start_failure, run_folder, start_temporary_server_early

    try:
        manifest = read_manifest(args.manifest)
        overrides = overrides_from_set(args.set)
        check_manifest_sizes(manifest, "shapespace", overrides)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    out_dir = run_folder(args.out, manifest.name, verbose=args.verbose)
    server_ready = start_temporary_server_early()  # its start overlaps the imports below
    from tasks.outages import ServiceUnavailable

    from ..shapespace_collection import shapespace_collection

    try:
        server_ready()
        summary = shapespace_collection(manifest=manifest, out_dir=out_dir, store_url=args.store,
                                        tracking_uri=args.tracking_uri, dask_address=args.dask_address,
                                        workers=args.workers, overrides=overrides or None, quiet=args.quiet)
    except (ConfigError, ServiceUnavailable) as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 3
    except Exception as exc:
        return report_prefect_start_failure(exc, verbose=args.verbose)
    print(json.dumps({"ok": summary["ok"], "failed": summary["failed"], "deepsdf": summary["deepsdf"]["model_uri"],
                      "report": summary["report"], "summary": summary["summary"], "aggregate": summary["aggregate"]},
                     indent=2))
    return 0 if summary["failed"] == 0 else 1
