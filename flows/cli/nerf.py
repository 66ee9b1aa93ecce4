"""`inr nerf`, `inr scene` and `inr nerf-run`: radiance fields from calibrated images.

`inr nerf DATASET_DIR` trains one scene here and now (no Prefect, Dask, Zarr or MLflow) and
writes `metrics.json` (psnr, ssim, seconds, steps, model; measured on the test split), the
field and its renders into --out; running it again with the same --out resumes from the
checkpoint there. `inr scene MESH` turns a mesh into such a dataset. `inr nerf-run MANIFEST`
runs the NeRF collection flow (`flows.nerfpipeline`) over a manifest's meshes and scenes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from inrcore.nerf.settings import MeshSceneConfig, NerfConfig, NerfPicturesConfig, RaysConfig
from inrcore.settings import NO_STEP_CAP

from .helptext import add_command, add_output_switches
from .options import add_setting_options
from .overrides import overrides_from_set


NERF_COMMANDS = ("nerf", "scene", "nerf-run")


def add_nerf_commands(commands) -> None:
    """Register nerf, scene and nerf-run on the `inr` subcommand parser."""
    nerf = add_command(
        commands, "nerf", "train a radiance field (NeRF or hash grid) on a scene folder",
        "inr nerf runs/spot-scene --seconds 600 --out runs/spot-ngp",
        "Train a radiance field on DATASET_DIR (transforms_train.json, transforms_test.json and their "
        "images, Blender / nerfstudio convention) into --out, in this order: training (within --steps "
        "or --seconds; checkpoint.pt), field.safetensors, then the test views are measured and "
        "metrics.json is written (psnr, ssim, seconds, steps, model; \"stage\": \"measured\"), then "
        "the pictures: test_views.png (renders over ground truth) and depth.png from the measured "
        "renders, and turntable.gif within --picture-seconds; metrics.json then gets their paths "
        "(\"stage\": \"complete\"). The command says how long measuring and pictures will take. "
        "Re-running with the same --out resumes.")
    nerf.add_argument("dataset", metavar="DATASET_DIR")
    add_setting_options(nerf, NerfConfig, {"model": "nerf (Mildenhall et al. 2020) or ngp (hash grid, faster)"})
    budget = nerf.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, metavar="N",
                        help=f"training steps (default: the config's, {NerfConfig().steps})")
    budget.add_argument("--seconds", type=float, metavar="S",
                        help="the training budget in seconds; measuring and pictures come after it (their "
                             "estimated time is printed)")
    nerf.add_argument("--out", required=True, metavar="DIR")
    add_setting_options(nerf, RaysConfig, {"downscale": "shrink images K times"}, metavars={"downscale": "K"})
    nerf.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="any NerfConfig setting, e.g. --set batch_rays=2048 --set view_dependent=false")
    nerf.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    nerf.add_argument("--test-views", type=int, metavar="N",
                      help="measure PSNR and SSIM on N test views spread evenly (default: every test view)")
    add_setting_options(nerf, NerfPicturesConfig, {
        "turntable_frames": "turntable frames; 0: no GIF",
        "turntable_size": "the turntable's longer side in pixels, never more than the test images'",
    }, metavars={"turntable_frames": "FRAMES", "turntable_size": "PX"}, flags={"turntable_frames": "--frames"})
    nerf.add_argument("--picture-seconds", type=float, metavar="S",
                      help="the turntable's time budget (default: a tenth of the training time, at least 30 s); "
                           "fewer frames when all would not fit")
    add_output_switches(nerf, None)

    scene = add_command(
        commands, "scene", "render a mesh into a Blender-format scene for `inr nerf`",
        "inr scene spot.obj --size 100 --out runs/spot-scene",
        "Render MESH from cameras on a sphere into DIR: train/ and test/ RGBA images and "
        "transforms_train.json / transforms_test.json.")
    scene.add_argument("mesh", metavar="MESH")
    scene.add_argument("--out", required=True, metavar="DIR")
    add_setting_options(scene, MeshSceneConfig, {"size": "image width and height", "n_train": "training views",
                                                 "n_test": "test views"},
                        metavars={"n_train": "TRAIN", "n_test": "TEST"}, flags={"n_train": "--train", "n_test": "--test"})
    scene.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any MeshSceneConfig setting")

    run = add_command(
        commands, "nerf-run", "a tracked, registered radiance field for every shape of a dataset",
        "inr nerf-run datasets/demo.yaml --seconds 300",
        "For every shape of MANIFEST (meshes, or Blender scene folders): render a scene, write its rays "
        "into the Zarr store, train a radiance field tracked in MLflow and registered as "
        "models:/<dataset>-<shape>-nerf@<alias>. Local by default, like `inr run`.")
    run.add_argument("manifest")
    run.add_argument("--out", metavar="DIR")
    run.add_argument("--store", metavar="URL")
    run.add_argument("--tracking-uri", metavar="URI")
    run.add_argument("--dask-address", metavar="ADDR")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--model", choices=("nerf", "ngp"))
    budget = run.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, metavar="N")
    budget.add_argument("--seconds", type=float, metavar="S")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any NerfPipelineConfig setting, e.g. --set scene.size=64 --set training.batch_rays=2048")
    add_output_switches(run, None, pipeline=True)


def nerf_command(args: argparse.Namespace) -> int:
    """Run `inr nerf`, `inr scene` or `inr nerf-run`; the exit status."""
    if args.command == "scene":
        return scene_command(args)
    if args.command == "nerf-run":
        return nerf_run_command(args)
    return train_command(args)


def train_command(args: argparse.Namespace) -> int:
    """`inr nerf`: exit 0, 2 (bad input or settings) or 1.

    metrics.json is written three times, each time atomically: after training ("stage":
    "trained": steps, seconds, the last training and sampled test PSNR), after measuring the
    test views ("measured": psnr, ssim), and after the pictures ("complete": their paths).
    """
    from inrcore.errors import ConfigError, InrflowError
    from inrcore.settings import budget_progress, config_replace

    try:
        overrides = overrides_from_set(args.set)
        overrides.update(model=args.model, device=args.device)
        if args.steps is not None:
            overrides["steps"] = args.steps
        if args.seconds is not None:
            overrides["seconds"] = args.seconds
            overrides.setdefault("steps", NO_STEP_CAP)
        config = config_replace(NerfConfig(), overrides, "settings")
        pictures = config_replace(NerfPicturesConfig(), picture_overrides(args), "settings")
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2

    from inrcore.device import resolve_device
    from inrcore.files import write_json_atomic
    from inrcore.nerf.pictures import (
        eval_rays,
        measure_test_views,
        measured_view_count,
        picture_budget,
        render_turntable,
        seconds_after_training,
        write_test_pictures,
    )
    from inrcore.nerf.raybatches import in_memory_ray_batches
    from inrcore.nerf.scenes import load_scene_split, scene_fingerprint, scene_splits
    from inrcore.nerf.training import save_radiance_field, train_radiance_field

    from .progress import ProgressLine

    bar = None if args.quiet else ProgressLine(sys.stderr)

    def say(text: str) -> None:
        """A line of its own, below the progress bar."""
        if bar is not None:
            bar.close()
            print(text, file=sys.stderr, flush=True)

    try:
        device = resolve_device(config.device)
        train = load_scene_split(args.dataset, "train", args.downscale)
        test = load_scene_split(args.dataset, "test" if "test" in scene_splits(args.dataset) else "train",
                                args.downscale)
    except InrflowError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"inr: --device {args.device}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batches = in_memory_ray_batches(train, config.batch_rays, config.seed)
    speed: dict[str, float] = {}  # seconds per rendered ray, from the first in-training evaluation
    sampled: dict[str, float] = {}

    def on_log(entry: dict) -> None:
        if bar is not None:
            done = budget_progress(entry["step"], entry["seconds"], config.steps, config.seconds)
            bar.update(done, f"inr nerf: step {entry['step']:>6}  loss {entry['loss']:.5f}  train PSNR "
                             f"{entry['psnr']:.2f}  {entry['seconds']:.1f}s  {entry['samples']} samples")

    def on_eval(step: int, metrics: dict, images: list) -> None:
        sampled["psnr"] = metrics["psnr"]
        say(f"inr nerf: step {step:>6}  test PSNR {metrics['psnr']:.2f}  SSIM {metrics['ssim']:.3f}")
        if not speed:
            speed["seconds_per_ray"] = metrics["render_seconds"] / eval_rays(config, test)
            expected = expected_training_seconds(config, step, metrics["seconds"])
            rest = seconds_after_training(speed["seconds_per_ray"], test, pictures,
                                          picture_budget(pictures, expected))
            say(f"inr nerf: after training, measuring will take about {format_duration(rest['measure'])} and the "
                f"turntable about {format_duration(rest['turntable'])} (at this step's render speed)")

    say(f"inr nerf: {args.dataset} ({len(train.images)} training views of {train.intrinsics.width}x"
        f"{train.intrinsics.height}) with {config.model} on {device} -> {out}")
    say(f"inr nerf: {describe_plan(config, pictures, test)}")
    start = time.perf_counter()
    result = train_radiance_field(config, batches, train.near, train.far, device, test=test, on_log=on_log,
                                  on_eval=on_eval, checkpoint_path=str(out / "checkpoint.pt"),
                                  data_key=scene_fingerprint(args.dataset) + f"/{args.downscale}")
    save_radiance_field(out / "field.safetensors", result.renderer, config, {"dataset": str(args.dataset)})
    record = {"stage": "trained", "seconds": result.seconds, "steps": result.steps, "model": config.model,
              "split": test.name, "device": str(device), "resumed_from": result.resumed_from,
              "width": test.intrinsics.width, "height": test.intrinsics.height,
              "train_psnr": result.history[-1]["psnr"] if result.history else None,
              "sampled_test_psnr": sampled.get("psnr"), "total_seconds": time.perf_counter() - start}
    write_json_atomic(out / "metrics.json", record)

    budget = picture_budget(pictures, result.seconds)
    views = measured_view_count(pictures, test)
    about = ""
    if speed:
        rest = seconds_after_training(speed["seconds_per_ray"], test, pictures, budget)
        about = f", about {format_duration(rest['measure'])}, then pictures, about {format_duration(rest['turntable'])}"
    say(f"inr nerf: trained {result.steps} steps in {result.seconds:.1f}s; measuring {views} {test.name} views of "
        f"{test.intrinsics.width}x{test.intrinsics.height}{about}")
    measured = measure_test_views(result.renderer, test, pictures.test_views, pictures.shown_views,
                                  config.chunk_rays, on_view=progress_printer(say, "measured", f"{test.name} views"))
    record.update(stage="measured", psnr=measured.psnr, ssim=measured.ssim, views=len(measured.indices),
                  measure_seconds=measured.seconds, total_seconds=time.perf_counter() - start)
    write_json_atomic(out / "metrics.json", record)
    say(f"inr nerf: PSNR {measured.psnr:.2f}  SSIM {measured.ssim:.3f} on {len(measured.indices)} {test.name} views "
        f"-> {out / 'metrics.json'}; now the pictures")

    images = {name: str(path) for name, path in write_test_pictures(measured, test, out).items()}
    turntable = render_turntable(result.renderer, test, out / "turntable.gif", pictures.turntable_frames,
                                 pictures.turntable_size, budget, config.chunk_rays,
                                 on_frame=progress_printer(say, "rendered", "turntable frames"))
    if turntable.path is not None:
        images["turntable"] = str(turntable.path)
        if turntable.frames < turntable.requested:
            say(f"inr nerf: the turntable got {turntable.frames} of {turntable.requested} frames to stay within "
                f"{budget:.0f}s (--picture-seconds)")
    record.update(stage="complete", images=images, turntable_frames=turntable.frames,
                  picture_seconds=turntable.seconds, total_seconds=time.perf_counter() - start)
    write_json_atomic(out / "metrics.json", record)
    print(json.dumps(record, indent=2))
    return 0


def picture_overrides(args: argparse.Namespace) -> dict:
    """`inr nerf`'s measurement and picture options as `NerfPicturesConfig` settings."""
    return {"test_views": args.test_views, "turntable_frames": args.turntable_frames,
            "turntable_size": args.turntable_size, "seconds": args.picture_seconds}


def expected_training_seconds(config, step: int, elapsed: float) -> float:
    """How long training will take in all, seen at `step` after `elapsed` training seconds: the
    steps' pace up to `steps`, no longer than the `seconds` budget."""
    by_steps = elapsed * config.steps / max(step, 1)
    return by_steps if config.seconds is None else min(by_steps, config.seconds)


def describe_plan(config, pictures, test) -> str:
    """One line saying what `inr nerf` does after training and within which budgets."""
    training = f"for {config.seconds:g}s (--seconds)" if config.seconds is not None else f"for {config.steps} steps"
    from inrcore.nerf.pictures import measured_view_count

    views = measured_view_count(pictures, test)
    turntable = ""
    if pictures.turntable_frames:
        small = test.intrinsics.scaled_to(pictures.turntable_size)
        within = (f"{pictures.seconds:g}s" if pictures.seconds is not None
                  else "a tenth of the training time (at least 30s)")
        turntable = f", a {pictures.turntable_frames}-frame turntable at {small.width}x{small.height} within {within}"
    return (f"training {training}, then measuring {views} {test.name} views of {test.intrinsics.width}x"
            f"{test.intrinsics.height} into metrics.json, then pictures (test_views.png, depth.png{turntable})")


def format_duration(seconds: float) -> str:
    """A duration for people: "45 s" under 90 s, "5.3 min" under 90 min, else "1.6 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_printer(say, verb: str, what: str):
    """An (done, total, seconds) callback that says how far a long loop is and how long is left,
    about ten times in all: after the first item, every tenth and the last."""
    def report(done: int, total: int, seconds: float) -> None:
        if done == 1 or done == total or done % -(-total // 10) == 0:
            left = seconds / done * (total - done)
            tail = f", about {format_duration(left)} left" if done < total else f" in {format_duration(seconds)}"
            say(f"inr nerf: {verb} {done}/{total} {what}{tail}")
    return report


def scene_command(args: argparse.Namespace) -> int:
    from inrcore.errors import ConfigError, InrflowError
    from inrcore.nerf.meshscenes import scene_from_mesh
    from inrcore.settings import config_replace

    try:
        overrides = overrides_from_set(args.set)
        overrides.update(size=args.size, n_train=args.n_train, n_test=args.n_test)
        config = config_replace(MeshSceneConfig(), overrides, "settings")
        folder = scene_from_mesh(args.mesh, args.out, config)
    except (ConfigError, InrflowError) as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"scene": str(folder), "train": config.n_train, "test": config.n_test, "size": config.size}))
    return 0


def nerf_run_command(args: argparse.Namespace) -> int:
    from inrcore.errors import ConfigError

    from ..manifest import read_manifest
    from ..sizes import check_manifest_sizes
    from .prefect_env import report_prefect_start_failure, run_folder, start_temporary_server_early

    try:
        manifest = read_manifest(args.manifest)
        overrides = overrides_from_set(args.set)
        training = overrides.setdefault("training", {})
        if args.model:
            training["model"] = args.model
        if args.steps is not None:
            training["steps"] = args.steps
        if args.seconds is not None:
            training["seconds"] = args.seconds
            training.setdefault("steps", NO_STEP_CAP)
        check_manifest_sizes(manifest, "nerf", overrides)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    out_dir = run_folder(args.out, f"{manifest.name}-nerf", verbose=args.verbose)

    server_ready = start_temporary_server_early()  # its start overlaps the imports below
    from ..nerfpipeline import nerf_collection

    try:
        server_ready()
        summary = nerf_collection(manifest=manifest, out_dir=out_dir, store_url=args.store,
                                  tracking_uri=args.tracking_uri, dask_address=args.dask_address,
                                  workers=args.workers, overrides=overrides, quiet=args.quiet)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        return report_prefect_start_failure(exc, verbose=args.verbose)
    print(json.dumps({"ok": summary["ok"], "failed": summary["failed"], "report": summary["report"],
                      "summary": summary["summary"], "tracking_uri": summary["tracking_uri"]}, indent=2))
    return 0 if summary["failed"] == 0 else 1
