"""The `inr` command line.

Heavy imports (Prefect, torch, MLflow) happen inside the commands, after the embedded
defaults for offline runs are in the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import yaml

from inrcore.sdf.methods import METHODS

from .helptext import CommandListFormatter, command_help
from .nerfcli import NERF_COMMANDS, add_nerf_commands, nerf_command
from .querycli import QUERY_COMMANDS, add_query_commands, query_command


DESCRIPTION = """\
inrflow: implicit neural representations of 3D shapes, run as pipelines over
shape collections. `inr COMMAND --help` gives a command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inr", description=DESCRIPTION, formatter_class=CommandListFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    commands.required = True

    run = commands.add_parser(
        "run",
        help=command_help("fit, mesh and measure a neural SDF for every shape of a dataset",
                          "inr run datasets/demo.yaml --seconds 120"),
        description=(
            "Run the Prefect pipeline over a dataset: sample each shape, fit a SIREN SDF (tracked in MLflow "
            "and registered as models:/<dataset>-<shape>@<alias>), evaluate it on a grid into Zarr, extract "
            "its surface and measure it against the input. Without options everything is local: Prefect "
            "without a server, a Dask LocalCluster, Zarr and MLflow (SQLite) in the run folder."
        ),
    )
    run.add_argument("manifest", help="dataset manifest (YAML, see datasets/demo.yaml) or a folder of mesh files")
    run.add_argument("--out", metavar="DIR", help="run folder (default: runs/<dataset name>)")
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
    run.add_argument("--quiet", action="store_true", help="no progress lines, only the final table")
    run.add_argument("--verbose", action="store_true", help="show Prefect's and MLflow's own log lines")

    fit = commands.add_parser(
        "fit",
        help=command_help("fit one mesh or point cloud here: metrics, field, mesh, picture",
                          "inr fit spot.obj --method igr --seconds 60 --out runs/spot"),
        description=(
            "Fit a neural SDF to one shape without the pipeline (no Prefect, Dask, Zarr or MLflow): a mesh "
            "(.obj .ply .off .stl .glb) or an oriented point cloud (.xyz, .npz, or .ply without faces; "
            "missing normals are estimated). Writes DIR/field.safetensors, DIR/mesh.ply (in the input's "
            "coordinates), DIR/metrics.json as soon as the surface is measured, then the picture DIR/mesh.png."
        ),
    )
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
    fit.add_argument("--quiet", action="store_true", help="no progress lines, only the metrics")
    fit.set_defaults(alias=None)
    add_query_commands(commands)
    add_nerf_commands(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_command(args)
    if args.command == "fit":
        return fit_command(args)
    if args.command in QUERY_COMMANDS:
        return query_command(args)
    if args.command in NERF_COMMANDS:
        return nerf_command(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def run_command(args: argparse.Namespace) -> int:
    from inrcore.errors import ConfigError

    from .manifest import read_manifest

    try:
        manifest = read_manifest(args.manifest)
        overrides = run_overrides(args)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    out_dir = str(Path(args.out or Path("runs") / manifest.name).resolve())
    use_offline_defaults(out_dir, verbose=args.verbose)

    from .pipeline import sdf_collection

    try:
        summary = sdf_collection(
            manifest=args.manifest, out_dir=out_dir, store_url=args.store, tracking_uri=args.tracking_uri,
            dask_address=args.dask_address, workers=args.workers, overrides=overrides or None, quiet=args.quiet,
        )
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
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
    from inrcore.device import resolve_device
    from inrcore.errors import ConfigError, InrflowError, ShapeError
    from inrcore.settings import PipelineConfig, config_replace

    try:
        config = config_replace(PipelineConfig(), fit_overrides(args), "inr fit")
        resolve_device(config.training.device)
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # CUDA asked for but absent
        print(f"inr: --device {args.device}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"inr: {args.out}: cannot create the output folder: {exc.strerror or exc}", file=sys.stderr)
        return 2

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
        training["steps"] = 10**9
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


def overrides_from_set(items: Sequence[str]) -> dict:
    """Nested overrides from --set KEY=VALUE options (dotted KEY, VALUE read as YAML)."""
    from inrcore.errors import ConfigError

    overrides: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.steps=500")
        key, value = item.split("=", 1)
        put_override(overrides, key.strip(), _parse_value(value))
    return overrides


def put_override(overrides: dict, dotted: str, value) -> None:
    """Set overrides[a][b][c] = value for dotted "a.b.c", making sections as needed."""
    from inrcore.errors import ConfigError

    node = overrides
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a section")
    node[leaf] = value


def _parse_value(text: str):
    """A --set value read as YAML, except that '1e-4' (which YAML 1.1 keeps as text) is a number."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# Seconds the command line lets Prefect's temporary server take to answer (Prefect's own default,
# 20 s, is too short for a fresh PREFECT_HOME on a busy 2-core machine with Prefect 3.9).
EPHEMERAL_STARTUP_SECONDS = 300
EPHEMERAL_STARTUP_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def use_offline_defaults(out_dir: str, verbose: bool = False) -> None:
    """Environment for a run with no servers; anything the user already set wins.

    Prefect keeps its temporary server's database under the run folder and gets a generous
    startup wait (`EPHEMERAL_STARTUP_SECONDS`), telemetry is off, and log noise is kept to
    warnings unless `verbose`.
    """
    defaults = {
        "PREFECT_HOME": str(Path(out_dir) / "prefect"),
        EPHEMERAL_STARTUP_SETTING: str(EPHEMERAL_STARTUP_SECONDS),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        "DO_NOT_TRACK": "1",
        "DASK_LOGGING__DISTRIBUTED": "info" if verbose else "warning",
        # Progress lines go to the flow run's logger at INFO (flows.stages.progress_printer): the
        # API (a server's UI, the temporary server's database) gets them, the console only
        # warnings, since the lines are printed once already.
        "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO" if verbose else "WARNING",
        # A shape's failure is reported on its progress line and in the summary; the task
        # engine's traceback for it (in the worker processes too) only with --verbose.
        "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO" if verbose else "CRITICAL",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)



def prefect_start_failure(exc: BaseException) -> Optional[str]:
    """One line for a run that failed because Prefect's temporary server never answered, or
    None when `exc` (or an exception it was raised from) is anything else."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if "ephemeral Prefect API server" in text:
            wait = os.environ.get(EPHEMERAL_STARTUP_SETTING, "Prefect's default")
            exited = " (its process exited)" if "process exited with code" in text else ""
            return (f"inr: Prefect's temporary server did not start within {wait} s{exited}; "
                    f"raise {EPHEMERAL_STARTUP_SETTING}, or set PREFECT_API_URL to a running Prefect server "
                    "(--verbose shows the traceback)")
        exc = exc.__cause__ or exc.__context__
    return None


def report_prefect_start_failure(exc: Exception, verbose: bool) -> int:
    """Exit status 2 with one line when Prefect's temporary server could not start (the
    traceback too with `verbose`); any other exception is raised again."""
    line = prefect_start_failure(exc)
    if line is None:
        raise exc
    if verbose:
        import traceback

        traceback.print_exception(exc)
    print(line, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
