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

NERF_COMMANDS = ("nerf", "scene", "nerf-run")


def add_nerf_commands(commands) -> None:
    """Register nerf, scene and nerf-run on the `inr` subcommand parser."""
    nerf = commands.add_parser(
        "nerf", help="train a radiance field (NeRF or hash grid) on a Blender-format scene folder",
        description="Train a radiance field on DATASET_DIR (transforms_train.json, transforms_test.json and their "
                    "images, Blender / nerfstudio convention), measure it on the test views and write metrics.json "
                    "(psnr, ssim, seconds, steps, model), field.safetensors, test_views.png (renders over ground "
                    "truth), depth.png and turntable.gif into --out. Re-running with the same --out resumes.")
    nerf.add_argument("dataset", metavar="DATASET_DIR")
    nerf.add_argument("--model", choices=("nerf", "ngp"), default="ngp", help="default: ngp (hash grid, faster)")
    budget = nerf.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, metavar="N", help="training steps (default: the config's, 5000)")
    budget.add_argument("--seconds", type=float, metavar="S", help="train for S seconds instead")
    nerf.add_argument("--out", required=True, metavar="DIR")
    nerf.add_argument("--downscale", type=int, default=1, metavar="K", help="shrink images K times (default 1)")
    nerf.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="any NerfConfig setting, e.g. --set batch_rays=2048 --set view_dependent=false")
    nerf.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    nerf.add_argument("--frames", type=int, default=24, help="turntable frames (default 24; 0: no GIF)")
    nerf.add_argument("--quiet", action="store_true")

    scene = commands.add_parser(
        "scene", help="render a mesh into a Blender-format NeRF dataset",
        description="Render MESH from cameras on a sphere into DIR: train/ and test/ RGBA images and "
                    "transforms_train.json / transforms_test.json.")
    scene.add_argument("mesh", metavar="MESH")
    scene.add_argument("--out", required=True, metavar="DIR")
    scene.add_argument("--size", type=int, default=100, help="image width and height (default 100)")
    scene.add_argument("--train", type=int, default=100, help="training views (default 100)")
    scene.add_argument("--test", type=int, default=20, help="test views (default 20)")
    scene.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any MeshSceneConfig setting")

    run = commands.add_parser(
        "nerf-run", help="run the NeRF pipeline (scene, rays into Zarr, training, registry) over a manifest",
        description="For every shape of MANIFEST (meshes, or Blender scene folders): render a scene, write its rays "
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
    run.add_argument("--quiet", action="store_true")
    run.add_argument("--verbose", action="store_true")


def nerf_command(args: argparse.Namespace) -> int:
    """Run `inr nerf`, `inr scene` or `inr nerf-run`; the exit status."""
    if args.command == "scene":
        return scene_command(args)
    if args.command == "nerf-run":
        return nerf_run_command(args)
    return train_command(args)


def train_command(args: argparse.Namespace) -> int:
    """`inr nerf`: exit 0, 2 (bad input or settings) or 1."""
    from inrcore.config import NerfConfig, config_replace
    from inrcore.errors import ConfigError, InrflowError

    from .cli import overrides_from_set

    try:
        overrides = overrides_from_set(args.set)
        overrides.update(model=args.model, device=args.device)
        if args.steps is not None:
            overrides["steps"] = args.steps
        if args.seconds is not None:
            overrides["seconds"] = args.seconds
            overrides.setdefault("steps", 10**9)
        config = config_replace(NerfConfig(), overrides, "inr nerf")
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2


    from inrcore.networks import resolve_device
    from inrcore.nerftrain import save_radiance_field, train_radiance_field, write_nerf_renders
    from inrcore.raybatches import in_memory_ray_batches
    from inrcore.scenes import load_scene_split, scene_splits
    from tasks.nerf import scene_fingerprint
    from tasks.store import write_json_atomic

    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
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

    def on_log(entry: dict) -> None:
        say(f"inr nerf: step {entry['step']:>6}  loss {entry['loss']:.5f}  train PSNR {entry['psnr']:.2f}  "
            f"{entry['seconds']:.1f}s  {entry['samples']} samples")

    def on_eval(step: int, metrics: dict, images: list) -> None:
        say(f"inr nerf: step {step:>6}  test PSNR {metrics['psnr']:.2f}  SSIM {metrics['ssim']:.3f}")

    say(f"inr nerf: {args.dataset} ({len(train.images)} training views of {train.intrinsics.width}x"
        f"{train.intrinsics.height}) with {config.model} on {device} -> {out}")
    start = time.perf_counter()
    result = train_radiance_field(config, batches, train.near, train.far, device, test=test, on_log=on_log,
                                  on_eval=on_eval, checkpoint_path=str(out / "checkpoint.pt"),
                                  data_key=scene_fingerprint(args.dataset) + f"/{args.downscale}")
    save_radiance_field(out / "field.safetensors", result.renderer, config, {"dataset": str(args.dataset)})
    measured = write_nerf_renders(result.renderer, test, out, args.frames, chunk=config.chunk_rays)
    metrics = {"psnr": measured["psnr"], "ssim": measured["ssim"], "seconds": result.seconds, "steps": result.steps,
               "model": config.model, "views": measured["views"], "split": test.name, "device": str(device),
               "resumed_from": result.resumed_from, "width": test.intrinsics.width,
               "height": test.intrinsics.height, "images": measured["images"],
               "total_seconds": time.perf_counter() - start}
    write_json_atomic(out / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def scene_command(args: argparse.Namespace) -> int:
    from inrcore.config import MeshSceneConfig, config_replace
    from inrcore.errors import ConfigError, InrflowError
    from inrcore.meshscenes import scene_from_mesh

    from .cli import overrides_from_set

    try:
        overrides = overrides_from_set(args.set)
        overrides.update(size=args.size, n_train=args.train, n_test=args.test)
        config = config_replace(MeshSceneConfig(), overrides, "inr scene")
        folder = scene_from_mesh(args.mesh, args.out, config)
    except (ConfigError, InrflowError) as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"scene": str(folder), "train": config.n_train, "test": config.n_test, "size": config.size}))
    return 0


def nerf_run_command(args: argparse.Namespace) -> int:
    from inrcore.errors import ConfigError

    from .cli import overrides_from_set, use_offline_defaults
    from .manifest import read_manifest

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
            training.setdefault("steps", 10**9)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    out_dir = str(Path(args.out or Path("runs") / f"{manifest.name}-nerf").resolve())
    use_offline_defaults(out_dir, verbose=args.verbose)

    from .nerfpipeline import nerf_collection

    try:
        summary = nerf_collection(manifest=args.manifest, out_dir=out_dir, store_url=args.store,
                                  tracking_uri=args.tracking_uri, dask_address=args.dask_address,
                                  workers=args.workers, overrides=overrides, quiet=args.quiet)
    except ConfigError as exc:
        print(f"inr: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"ok": summary["ok"], "failed": summary["failed"], "summary": summary["summary"],
                      "tracking_uri": summary["tracking_uri"]}, indent=2))
    return 0 if summary["failed"] == 0 else 1
