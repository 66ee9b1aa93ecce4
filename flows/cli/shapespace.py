"""`inr generate`, `inr deepsdf train|reconstruct|complete`, `inr occnet train|reconstruct` (here and now:
no Prefect, Dask, Zarr or MLflow, except reading a models:/ MODEL) and `inr space-run` (the pipeline).

MANIFEST is a dataset manifest or a folder of meshes (its "train" split is trained on); MODEL is the
file `train` wrote (model.safetensors) or a registry URI models:/<name>@<alias> (--tracking-uri).
Heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from inrcore.shapespace.settings import GeneratorConfig

from .helptext import add_command, add_output_switches
from .options import add_setting_options
from .overrides import overrides_from_set, put_override


SHAPESPACE_COMMANDS = ("generate", "deepsdf", "occnet", "space-run")
SET_HELP = "any shape-space setting by its dotted path, e.g. --set training.lr_decoder=1e-3 --set mesh.levels=3"


def _common(parser: argparse.ArgumentParser, budget: Optional[str]) -> None:
    """--steps/--seconds (when the action trains or optimises: `budget` says what the steps are), --out,
    --set, --device and --quiet."""
    if budget is not None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--steps", type=int, metavar="N", help=f"{budget} (default: the settings')")
        group.add_argument("--seconds", type=float, metavar="S", help="a wall-time budget in seconds instead")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the results (created if needed)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to compute (default: auto, CUDA when present)")
    add_output_switches(parser, "the metrics")


def _action(actions, name: str, what: str, description: str, budget: Optional[str], model: bool,
            positional: tuple[str, str, str]) -> argparse.ArgumentParser:
    """One ACTION of `inr deepsdf` or `inr occnet`: MODEL first when `model`, then the positional
    (dest, METAVAR, help), then the common options."""
    parser = actions.add_parser(name, help=what, description=description)
    if model:
        parser.add_argument("model", metavar="MODEL", help="model.safetensors written by train, or models:/<name>@<alias>")
        parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for a models:/ MODEL")
    parser.add_argument(positional[0], metavar=positional[1], help=positional[2])
    _common(parser, budget)
    return parser


MANIFEST = ("manifest", "MANIFEST", "dataset manifest (YAML) or a folder of meshes")


def add_shapespace_commands(commands) -> None:
    """Register generate, deepsdf, occnet and space-run on the `inr` subcommand parser."""
    generate = add_command(
        commands, "generate", "write a procedural shape collection and its manifest",
        "inr generate gen --per-family 34",
        "Write watertight procedural shapes (parametric parts joined by manifold3d booleans) of the chosen "
        "families, with seeded train/test splits, into DIR/meshes and the manifest DIR/manifest.yaml.")
    generate.add_argument("out", metavar="DIR", help="folder to write (created if needed)")
    generate.add_argument("--families", default=",".join(GeneratorConfig().families), metavar="A,B",
                          help="comma-separated families (chair, table, lamp, mug, airplane)")
    add_setting_options(generate, GeneratorConfig, {"per_family": "shapes per family",
                                                    "test_fraction": "share of each family held out",
                                                    "seed": "the collection's seed"}, metavars={"per_family": "N"})
    generate.add_argument("--name", default="generated", help="the manifest's dataset name")

    deepsdf = add_command(commands, "deepsdf", "a DeepSDF shape space: train, reconstruct, complete",
                          "inr deepsdf train gen/manifest.yaml --out runs/ds",
                          "The DeepSDF auto-decoder (Park et al. 2019): one decoder and a latent code per shape.")
    actions = deepsdf.add_subparsers(dest="action", metavar="ACTION", required=True)
    _action(actions, "train", "train on a manifest's train split",
            "Sample every train shape, train the decoder and codes; writes DIR/model.safetensors, "
            "DIR/metrics.json and DIR/members.png.", "training epochs", False, MANIFEST)
    _action(actions, "reconstruct", "fit a code to a mesh and mesh the member",
            "Writes DIR/mesh.ply (the input's coordinates), DIR/mesh.png, DIR/metrics.json.", "code-fitting steps",
            True, ("input", "INPUT", "the mesh to reconstruct"))
    complete = _action(actions, "complete", "complete a shape from one depth scan",
                       "SCAN is a depth-scan .npz (origin [3], directions [H, W, 3], depth [H, W]; with center "
                       "and scale, the map into the model's normalised frame; without, the scan is in that "
                       "frame) or a mesh, scanned from one seeded view (depth noise --noise; its scan is written "
                       "as DIR/scan.npz). Fits a code to the scan and meshes the member. Writes DIR/scan.ply, "
                       "DIR/mesh.ply, DIR/mesh.png, DIR/metrics.json (against the whole mesh, or --reference).",
                       "code-fitting steps", True, ("scan", "SCAN", "a depth-scan .npz or a mesh to scan"))
    complete.add_argument("--noise", type=float, default=0.0, metavar="A", help="depth noise α (default 0)")
    complete.add_argument("--reference", default=None, metavar="MESH", help="the whole shape, for metrics of a scan file")
    complete.add_argument("--seed", type=int, default=0, help="the view's seed")
    between = _action(actions, "interpolate", "meshes between two training shapes' codes",
                      "Mesh the members on the straight line between the codes of two training shapes, ends "
                      "included: DIR/step-<k>.ply (normalised frame), DIR/strip.png side by side, DIR/metrics.json.",
                      None, True, ("first", "FIRST", "a training shape's id"))
    between.add_argument("second", metavar="SECOND", help="another training shape's id")
    between.add_argument("--count", type=int, default=5, metavar="K", help="meshes in the strip (default 5)")

    occnet = add_command(commands, "occnet", "an Occupancy Network: train, reconstruct from points",
                         "inr occnet train gen/manifest.yaml --out runs/on",
                         "The Occupancy Network (Mescheder et al. 2019): a point-cloud encoder and an occupancy decoder.")
    actions = occnet.add_subparsers(dest="action", metavar="ACTION", required=True)
    _action(actions, "train", "train on a manifest's train split", "Writes DIR/model.safetensors and DIR/metrics.json.",
            "training steps", False, MANIFEST)
    _action(actions, "reconstruct", "a mesh from points (or from a mesh's noisy points)",
            "POINTS is a mesh (its noisy surface points are the input, and IoU is measured) or a point file "
            "(.xyz/.ply/.npz). Writes DIR/mesh.ply, DIR/mesh.png, DIR/metrics.json.", None, True,
            ("points", "POINTS", "mesh or point-cloud file"))

    run = add_command(commands, "space-run", "the shape-space pipeline over a manifest",
                      "inr space-run gen/manifest.yaml",
                      "Run the Prefect pipeline: samples into Zarr (Dask), a DeepSDF space and an Occupancy Network "
                      "trained and registered in MLflow, held-out reconstruction and completion at each noise "
                      "level, metrics and a report in the run folder.")
    run.add_argument("manifest", help="dataset manifest (YAML) or a folder of meshes")
    run.add_argument("--out", metavar="DIR", help="run folder, a path or an fsspec URL such as "
                     "s3://bucket/run (default: runs/<dataset name>)")
    run.add_argument("--store", metavar="URL", help="Zarr store path or fsspec URL")
    run.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: sqlite in the run folder)")
    run.add_argument("--dask-address", metavar="ADDR", help="a running Dask scheduler (default: a LocalCluster)")
    run.add_argument("--workers", type=int, default=2, metavar="N", help="LocalCluster worker processes (default 2)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    add_output_switches(run, "the summary", pipeline=True)


def shapespace_command(args: argparse.Namespace) -> int:
    """Run one of the shape-space commands: exit 0, 2 (bad input or settings) or 1 (the computation failed)."""
    from inrcore.errors import ConfigError, InrflowError, ShapeError

    from . import shapespace_run

    try:
        if args.command == "generate":
            return shapespace_run.generate(args)
        if args.command == "space-run":
            return shapespace_run.pipeline(args)
        config = settings_of(args)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        run = {("deepsdf", "train"): shapespace_run.deepsdf_train, ("deepsdf", "reconstruct"): shapespace_run.deepsdf_fit,
               ("deepsdf", "complete"): shapespace_run.deepsdf_fit, ("occnet", "train"): shapespace_run.occnet_train,
               ("occnet", "reconstruct"): shapespace_run.occnet_reconstruct,
               ("deepsdf", "interpolate"): shapespace_run.deepsdf_interpolate}[(args.command, args.action)]
        metrics = run(args, config)
    except (ShapeError, ConfigError) as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    except (InrflowError, FloatingPointError) as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2))
    return 0


def settings_of(args: argparse.Namespace):
    """ShapeSpaceConfig with the options, then --set, over its defaults."""
    from inrcore.settings import config_replace, merge_overrides
    from inrcore.shapespace.settings import ShapeSpaceConfig

    options: dict = {"device": args.device}
    which = {("deepsdf", "train"): "training.epochs", ("occnet", "train"): "occnet.steps"}.get(
        (args.command, args.action), "fitting.steps")
    seconds = {"training.epochs": "training.seconds", "occnet.steps": "occnet.seconds"}.get(which, "fitting.seconds")
    if getattr(args, "steps", None) is not None:
        put_override(options, which, args.steps)
    if getattr(args, "seconds", None) is not None:
        put_override(options, seconds, args.seconds)
        put_override(options, which, 10**9)
    return config_replace(ShapeSpaceConfig(), merge_overrides(options, overrides_from_set(args.set)), "settings")
