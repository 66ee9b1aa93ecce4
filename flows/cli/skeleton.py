"""`inr skeleton`: one shape's medial skeleton here (no Prefect, Dask, Zarr or MLflow).

Heavy imports (torch, scipy, trimesh) happen inside the command.
"""

from __future__ import annotations

import argparse
import json
import sys

from inrcore.skeleton.settings import CoverConfig, SkeletonConfig, SkeletonFieldConfig, TraceConfig

from .helptext import add_command, add_output_switches
from .options import add_setting_options, one_shape_settings
from .overrides import overrides_from_set, put_override


SKELETON_COMMANDS = ("skeleton",)


def add_skeleton_commands(commands) -> None:
    """Register `skeleton` on the `inr` subcommand parser."""
    skeleton = add_command(
        commands, "skeleton", "the medial skeleton of one shape: balls, edges, triangles",
        "inr skeleton spot.obj --method neural --out runs/spot-sk",
        (
            "Compute the skeleton of one shape: a mesh (.obj .ply .off .stl .glb) or an oriented point cloud "
            "(.xyz, .npz, or .ply without faces; missing normals are estimated). --method neural fits a "
            "TV-regularised neural SDF and traces skeletal points inward from its zero set (Clemot & Digne "
            "2023); --method coverage-axis takes candidates inside the input by its winding number (Dou et al. "
            "2022). Both then select the fewest balls covering the surface (a set cover solved by HiGHS) and "
            "link them by a regular triangulation. Writes DIR/skeleton.ply, DIR/skeleton.ma, DIR/balls.ply and "
            "DIR/metrics.json (in the input's coordinates), then DIR/skeleton.png."
        ),)
    skeleton.add_argument("shape", metavar="MESH_OR_POINTS", help="the mesh or point-cloud file")
    add_setting_options(skeleton, SkeletonConfig, {"method": "how candidate balls are found"})
    skeleton.add_argument("--out", required=True, metavar="DIR", help="folder for the results (created if needed)")
    add_setting_options(skeleton, SkeletonFieldConfig, {"steps": "training steps of the neural field"})
    add_setting_options(skeleton, SkeletonFieldConfig, {"seconds": "the neural field's training budget in seconds "
                                                                   "(the steps still cap it)"}, nullable_as=None)
    add_setting_options(skeleton, CoverConfig, {"delta": "the balls' dilation in the normalised frame "
                                                         "(the shape's longest side spans 1.8)",
                                                "time_limit": "the set cover solver's time limit in seconds"})
    add_setting_options(skeleton, TraceConfig, {"n_surface": "surface samples to cover (and to trace from)"},
                        metavars={"n_surface": "N"})
    skeleton.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="any skeleton setting by its dotted path (over the options), e.g. --set field.lr=5e-5 "
                               "--set candidates.n_box=100000")
    skeleton.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                          help="where to train and trace (default: auto, CUDA when present)")
    add_output_switches(skeleton, "the metrics")


def skeleton_overrides(args: argparse.Namespace) -> dict:
    """The nested overrides of SkeletonConfig: the options (their defaults are the settings' own),
    then --set over them."""
    from inrcore.settings import merge_overrides

    options: dict = {}
    put_override(options, "method", args.method)
    put_override(options, "device", args.device)
    put_override(options, "field.steps", args.steps)
    if args.seconds is not None:
        put_override(options, "field.seconds", args.seconds)
    put_override(options, "cover.delta", args.delta)
    put_override(options, "cover.time_limit", args.time_limit)
    put_override(options, "trace.n_surface", args.n_surface)
    return merge_overrides(options, overrides_from_set(args.set))


def skeleton_command(args: argparse.Namespace) -> int:
    """`inr skeleton`: exit 0, 2 (bad input or settings) or 1 (the computation failed)."""
    from inrcore.errors import ConfigError, InrflowError, ShapeError
    from inrcore.settings import config_replace

    config, status = one_shape_settings(
        lambda: config_replace(SkeletonConfig(), skeleton_overrides(args), "settings"),
        lambda config: config.device, args)
    if config is None:
        return status

    from inrcore.settings import budget_progress
    from inrcore.skeleton.outputs import write_skeleton_files
    from inrcore.skeleton.skeletonise import skeleton_metrics, skeleton_of_shape

    from .progress import ProgressLine

    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    bar = None if args.quiet or config.method != "neural" else ProgressLine(sys.stderr)
    field = config.field

    def log(entry: dict) -> None:
        if bar is not None:
            done = budget_progress(entry["step"], entry["seconds"], field.steps, field.seconds)
            bar.update(done, f"inr skeleton: field step {entry['step']:>5}/{field.steps}  loss {entry['loss']:.4g}  "
                             f"{entry['seconds']:.1f}s")

    say(f"inr skeleton: {args.shape} with {config.method} -> {args.out}")
    try:
        try:
            result = skeleton_of_shape(args.shape, config, on_log=log)
        finally:
            if bar is not None:
                bar.close()
        metrics = skeleton_metrics(result)
        metrics["input"] = str(args.shape)
        write_skeleton_files(args.out, result.skeleton, result.shape.normalisation, metrics, result.shape.reference)
    except (ShapeError, ConfigError) as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    except InrflowError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 1
    except FloatingPointError as exc:  # training diverged
        print(f"inr: {args.shape}: {exc}", file=sys.stderr)
        return 1
    say(f"inr skeleton: {metrics['balls']} balls, {metrics['edges']} edges, {metrics['faces']} triangles "
        f"({metrics['cover']['method']}, {metrics['uncovered']} surface samples uncovered)")
    print(json.dumps(metrics, indent=2))
    return 0
