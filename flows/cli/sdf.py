"""`inr run` and `inr fit`: neural SDFs, over a dataset by the Prefect pipeline or for one shape here.

Heavy imports (Prefect, torch, MLflow) happen inside the commands, after the embedded
defaults for offline runs are in the environment.
"""

from __future__ import annotations

import argparse
import json
import sys

from inrcore.sdf.methods import METHODS
from inrcore.settings import NO_STEP_CAP

from .helptext import add_command, add_output_switches
from .overrides import overrides_from_set, put_override
from .prefect_env import report_prefect_start_failure, run_folder, start_temporary_server_early


SDF_COMMANDS = ("run", "fit")


def add_sdf_commands(commands) -> None:
    """Register run and fit on the `inr` subcommand parser."""
    run = add_command(
        commands, "run", "fit, mesh and measure a neural SDF for every shape of a dataset",
        "inr run datasets/demo.yaml --seconds 120",
        (
            "Run the Prefect pipeline over a dataset: sample each shape, fit a SIREN SDF (tracked in MLflow "
            "and registered as models:/<dataset>-<shape>@<alias>), evaluate it on a grid into Zarr, extract "
            "its surface and measure it against the input. Without options everything is local: Prefect "
            "without a server, a Dask LocalCluster, Zarr and MLflow (SQLite) in the run folder."
        ),)
    run.add_argument("manifest", help="dataset manifest (YAML, see datasets/demo.yaml) or a folder of mesh files")
    run.add_argument("--out", metavar="DIR", help="run folder, a path or an fsspec URL such as s3://bucket/run "
                     "(default: runs/<dataset name>)")
    run.add_argument("--store", metavar="URL", help="Zarr store: a path or fsspec URL (default: <run folder>/store.zarr)")
    run.add_argument("--tracking-uri", metavar="URI",
                     help="MLflow tracking URI, e.g. http://127.0.0.1:5000 (default: sqlite in the run folder)")
    run.add_argument("--dask-address", metavar="ADDR",
                     help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)")
    run.add_argument("--workers", type=int, default=2, metavar="N",
                     help="worker processes of the LocalCluster (default: 2; ignored with --dask-address)")
    run.add_argument("--steps", type=int, metavar="N", help="training steps per shape (overrides the manifest)")
    run.add_argument("--seconds", type=float, metavar="S", help="training time budget per shape in seconds")
    run.add_argument("--resolution", type=int, metavar="R", help="grid resolution for field evaluation (R^3 points)")
    run.add_argument("--method", choices=METHODS,
                     help="fit every shape with this method and its training settings (over the manifest's; "
                          "--set still wins)")
    run.add_argument("--alias", metavar="NAME", help="registry alias given to each new model (default: champion)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any setting by its dotted path, e.g. --set training.lr=1e-4 --set sampling.n_surface=20000")
    add_output_switches(run, "the final table", pipeline=True)

    fit = add_command(
        commands, "fit", "fit one mesh or point cloud here: metrics, field, mesh, picture",
        "inr fit spot.obj --method igr --seconds 60 --out runs/spot",
        (
            "Fit a neural SDF to one shape without the pipeline (no Prefect, Dask, Zarr or MLflow): a mesh "
            "(.obj .ply .off .stl .glb) or an oriented point cloud (.xyz, .npz, or .ply without faces; "
            "missing normals are estimated). Writes DIR/field.safetensors, DIR/mesh.ply (in the input's "
            "coordinates), DIR/metrics.json as soon as the surface is measured, then the picture DIR/mesh.png."
        ),)
    fit.add_argument("shape", metavar="MESH_OR_POINTS", help="the mesh or point-cloud file")
    fit.add_argument("--method", required=True, choices=METHODS, help="the field's network and loss")
    budget = fit.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, metavar="N", help="training steps (default: training.steps)")
    budget.add_argument("--seconds", type=float, metavar="S",
                        help="the training budget: train for S seconds of wall time instead (meshing, metrics and "
                             "the picture come after it)")
    fit.add_argument("--out", required=True, metavar="DIR", help="folder for the results (created if needed)")
    fit.add_argument("--resolution", type=int, metavar="R", help="grid resolution of the mesh extraction (R^3 points)")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any setting by its dotted path, e.g. --set training.lr=1e-4 --set sampling.n_surface=20000")
    fit.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where to train and evaluate (default: auto, CUDA when present)")
    add_output_switches(fit, "the metrics")
    fit.set_defaults(alias=None)


def sdf_command(args: argparse.Namespace) -> int:
    """Run `inr run` or `inr fit`; the exit status."""
    return run_command(args) if args.command == "run" else fit_command(args)


def run_command(args: argparse.Namespace) -> int:
    from inrcore.errors import ConfigError

    from ..manifest import read_manifest
    from ..sizes import check_manifest_sizes

    try:
        manifest = read_manifest(args.manifest)
        overrides = run_overrides(args)
        check_manifest_sizes(manifest, "config", overrides)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    out_dir = run_folder(args.out, manifest.name, verbose=args.verbose)

    server_ready = start_temporary_server_early()  # its start overlaps the imports below
    from tasks.outages import ServiceUnavailable

    from ..pipeline import sdf_collection

    try:
        server_ready()
        summary = sdf_collection(
            manifest=manifest, out_dir=out_dir, store_url=args.store, tracking_uri=args.tracking_uri,
            dask_address=args.dask_address, workers=args.workers, overrides=overrides or None, quiet=args.quiet,
        )
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:  # e.g. the tracking server, before any shape started
        print(f"inr: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        return report_prefect_start_failure(exc, verbose=args.verbose)
    if args.quiet:
        from inrcore.report import format_results_table

        print(format_results_table(summary["shapes"]))
    print(json.dumps({"ok": summary["ok"], "failed": summary["failed"], "report": summary["report"],
                      "summary": summary["summary"], "tracking_uri": summary["tracking_uri"]}, indent=2))
    return 0 if summary["failed"] == 0 else 1


def fit_command(args: argparse.Namespace) -> int:
    """`inr fit`: one shape through inrcore.sdf.fitshape, results into --out. Exit 0, 2 (bad input) or 1."""
    from inrcore.errors import ConfigError, InrflowError, ShapeError
    from inrcore.sdf.settings import PipelineConfig
    from inrcore.settings import config_replace

    from .options import one_shape_settings

    config, status = one_shape_settings(lambda: config_replace(PipelineConfig(), fit_overrides(args), "settings"),
                                        lambda config: config.training.device, args)
    if config is None:
        return status

    from inrcore.sdf.fitshape import fit_record, fit_shape, save_shape_fit
    from inrcore.settings import budget_progress

    from .progress import ProgressLine

    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    training = config.training
    of_steps = "" if args.seconds is not None else f"/{training.steps}"
    bar = None if args.quiet else ProgressLine(sys.stderr)

    def log(entry: dict) -> None:
        if bar is not None:
            done = budget_progress(entry["step"], entry["seconds"], training.steps, training.seconds)
            bar.update(done, f"inr fit: step {entry['step']:>6}{of_steps}  loss {entry['loss']:.5g}  "
                             f"{entry['seconds']:.1f}s")

    say(f"inr fit: {args.shape} with {training.network.kind} -> {args.out}")
    try:
        try:
            result = fit_shape(args.shape, config, on_log=log)
        finally:
            if bar is not None:
                bar.close()
        save_shape_fit(result, args.out, config)
    except (ShapeError, ConfigError) as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    except InrflowError as exc:  # a fit that ran but gave no surface
        print(f"inr: {exc}", file=sys.stderr)
        return 1
    except FloatingPointError as exc:  # training diverged
        print(f"inr: {args.shape}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(fit_record(result, config.training.network.kind), indent=2))
    return 0


def run_overrides(args: argparse.Namespace) -> dict:
    """`inr run`'s nested overrides: --method's settings (`inrcore.sdf.methods`), if given, with
    `overrides_from_args` over them. Both are laid over the manifest's config."""
    overrides = overrides_from_args(args)
    if args.method:
        from inrcore.sdf.methods import method_overrides

        overrides = method_overrides(args.method, overrides)
    return overrides


def fit_overrides(args: argparse.Namespace) -> dict:
    """`inr fit`'s nested overrides: the method's settings (`inrcore.sdf.methods`), then
    `overrides_from_args` over them, then --method's network kind and --device.

    With --seconds and no training.steps of its own, the step cap is lifted so that the time
    budget decides.
    """
    from inrcore.errors import ConfigError
    from inrcore.sdf.methods import method_overrides

    overrides = overrides_from_args(args)
    if not isinstance(overrides.get("training", {}), dict) or not isinstance(
            overrides.get("training", {}).get("network", {}), dict):
        raise ConfigError("--set: training and training.network are sections, not values")
    overrides = method_overrides(args.method, overrides)  # the method's settings, --set over them
    training = overrides["training"]
    training["network"]["kind"] = args.method
    training["device"] = args.device
    if args.seconds is not None and "steps" not in training:
        training["steps"] = NO_STEP_CAP
    return overrides


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Nested overrides from the shortcut options and --set KEY=VALUE (VALUE read as YAML)."""
    overrides = overrides_from_set(args.set)
    if args.steps is not None:
        put_override(overrides, "training.steps", args.steps)
    if args.seconds is not None:
        put_override(overrides, "training.seconds", args.seconds)
    if args.resolution is not None:
        put_override(overrides, "grid.resolution", args.resolution)
    if args.alias is not None:
        put_override(overrides, "alias", args.alias)
    return overrides
