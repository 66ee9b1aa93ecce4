"""Training a radiance field from a scene's stored rays, tracked in MLflow and registered.

`train_nerf` streams shuffled batches from the scene's ray chunks (`tasks.nerf.rays`), trains
(`inrcore.nerf.training`) with MLflow logging (loss and PSNR; test PSNR/SSIM and a render every
`eval_every` steps), checkpoints into `<out>/checkpoints/<id>.pt` (a re-run after a crash
resumes there), measures the test views and writes `<out>/nerf/<id>/metrics.json`, then its
pictures, and registers the field as `models:/<dataset>-<id>-nerf@<alias>`. A complete record
is reused. `<out>` is a path or a URL (`tasks.locations`): for a URL, files are made in scratch
space and put there, the checkpoint after every write.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from prefect import task

from inrcore.device import resolve_device
from inrcore.nerf.pictures import measure_test_views, picture_budget, render_turntable, write_test_pictures
from inrcore.nerf.scenes import load_scene_split, scene_splits
from inrcore.nerf.settings import NerfConfig, NerfPicturesConfig
from inrcore.nerf.training import save_radiance_field, train_radiance_field
from inrcore.settings import config_to_dict, fingerprint, result_settings

from .. import locations, registry
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import open_store
from .rays import zarr_ray_batches
from .scenes import local_scene


@dataclass(frozen=True, kw_only=True)
class RadianceField(StageResult):
    """A shape's trained radiance field: its registry URI and version, MLflow run, fingerprint,
    the test-view PSNR (dB) and SSIM, training steps and seconds, the model kind, and its
    pictures ({name: PNG or GIF path}). `record` is the whole `metrics.json` record."""

    model_uri: str
    version: str
    run_id: str
    fingerprint: str
    model: str
    psnr: float
    ssim: float
    steps: int
    train_seconds: float
    images: dict
    record: dict


def nerf_model_name(dataset: str, shape_id: str) -> str:
    return registry.model_name(dataset, f"{shape_id}-nerf")


@task(name="train-nerf", retries=1, retry_condition_fn=retry_unless_bad_input)
def train_nerf(shape_id: str, dataset: str, store_url: str, rays_path: str, rays_key: str, scene_dir: str,
               nerf: NerfConfig, downscale: int, out_dir: str, tracking_uri: str, experiment_id: str, alias: str,
               pictures: NerfPicturesConfig = NerfPicturesConfig()) -> RadianceField:
    """Train, measure, picture and register one shape's radiance field (see the module docstring).

    Numbers come first: `<out>/nerf/<id>/metrics.json` is written (and the final PSNR/SSIM
    logged) as soon as the test views are measured ("stage": "measured"), then the pictures
    (`NerfPicturesConfig`: test_views.png, depth.png, a small turntable within its budget)
    are made, the field registered, and the record rewritten with "stage": "complete".
    Only a complete record is reused.
    """
    start = time.perf_counter()
    config, picture_settings = nerf, pictures
    key = fingerprint("nerf", rays_key, result_settings(config))
    name = nerf_model_name(dataset, shape_id)
    folder = locations.join(out_dir, "nerf", shape_id)
    record_path = locations.join(folder, "metrics.json")
    record = locations.read_json(record_path)
    found = registry.find_model_version(tracking_uri, name, key)
    if (found is not None and record and record.get("fingerprint") == key
            and record.get("stage", "complete") == "complete"):  # records from before stages were complete
        registry.set_alias(tracking_uri, name, alias, found.version)
        return _radiance_field(record, f"models:/{name}@{alias}", found.version, reused=True,
                               seconds=time.perf_counter() - start)

    device = resolve_device(config.device)
    group = open_store(store_url, mode="r")[rays_path]
    near, far = float(group.attrs["near"]), float(group.attrs["far"])
    with local_scene(scene_dir) as scene_folder:
        test = load_scene_split(scene_folder, "test" if "test" in scene_splits(scene_folder) else "train", downscale)
    run_id = registry.start_run(
        tracking_uri, experiment_id, run_name=f"{shape_id}-nerf",
        params={"nerf": config_to_dict(config), "shape_id": shape_id, "dataset": dataset, "rays": rays_key},
        tags={"inrflow.shape_id": shape_id, "inrflow.dataset": dataset, "inrflow.stage": "train-nerf"},
    )

    def on_log(entry: dict) -> None:
        registry.log_metrics(tracking_uri, run_id, {f"train/{k}": v for k, v in entry.items() if k != "step"},
                             entry["step"])

    def on_eval(step: int, metrics: dict, images: list) -> None:
        registry.log_metrics(tracking_uri, run_id, {f"test/{k}": v for k, v in metrics.items()}, step)
        registry.client(tracking_uri).log_image(run_id, images[0], artifact_file=f"renders/step_{step:07d}.png")

    with registry.ending_run(tracking_uri, run_id), tempfile.TemporaryDirectory(prefix="inrflow-nerf-") as scratch:
        # files are made in the run folder itself when it is local, else in `scratch` and put there
        work = Path(scratch) if locations.is_url(folder) else locations.local_path(folder)
        checkpoint_location = locations.join(out_dir, "checkpoints", f"{shape_id}.pt")
        checkpoint, put_checkpoint = local_checkpoint(checkpoint_location, scratch)
        result = train_radiance_field(
            config, zarr_ray_batches(store_url, rays_path, config.batch_rays, config.seed), near, far, device,
            test=test, on_log=on_log, on_eval=on_eval, checkpoint_path=checkpoint,
            on_checkpoint=put_checkpoint, data_key=rays_key)
        weights = save_radiance_field(work / "field.safetensors", result.renderer, config,
                                      {"shape_id": shape_id, "dataset": dataset, "fingerprint": key})
        measured = measure_test_views(result.renderer, test, picture_settings.test_views,
                                      picture_settings.shown_views, config.chunk_rays)
        outcome = {"fingerprint": key, "stage": "measured", "model": config.model, "psnr": measured.psnr,
                   "ssim": measured.ssim, "views": len(measured.indices), "steps": result.steps,
                   "seconds": result.seconds, "measure_seconds": measured.seconds,
                   "resumed_from": result.resumed_from, "images": {}, "run_id": run_id,
                   "weights": _put(weights, folder)}
        locations.write_json(record_path, outcome)
        registry.log_metrics(tracking_uri, run_id, {"test/psnr_final": measured.psnr, "test/ssim_final": measured.ssim,
                                                    "train/seconds_total": result.seconds,
                                                    "train/steps_total": result.steps}, result.steps)
        images = write_nerf_pictures(result.renderer, test, work, measured, picture_settings, result.seconds,
                                     config.chunk_rays)
        for image in images.values():
            registry.log_artifact(tracking_uri, run_id, image, "renders")
        images = {role: _put(image, folder) for role, image in images.items()}
        model_uri, version = registry.register_radiance_field(tracking_uri, run_id, name, alias, weights, key)
    outcome.update(stage="complete", images=images)
    locations.write_json(record_path, outcome)
    return _radiance_field(outcome, model_uri, version, seconds=time.perf_counter() - start)


def local_checkpoint(location: str, scratch: str) -> tuple[str, Optional[Callable[[str], object]]]:
    """A training checkpoint at `location` (a path or URL) as (a local file, what to call after each write):
    the file itself and nothing for a path; for a URL, a copy in `scratch` fetched now (when there is one)
    and a call putting it back whole, so that a run restarted on another machine resumes from it."""
    if not locations.is_url(location):
        return str(locations.local_path(location)), None
    local = Path(scratch) / "checkpoint.pt"
    with contextlib.suppress(FileNotFoundError):
        local.write_bytes(locations.read_bytes(location))
    return str(local), lambda path: locations.copy_to(path, location)


def _put(path, folder: str) -> str:
    """`path` (a file made in the run folder, or in scratch space for a folder at a URL) where the run
    keeps it: itself, or a copy at `<folder>/<its name>`."""
    if not locations.is_url(folder):
        return str(path)
    return locations.copy_to(path, locations.join(folder, Path(path).name))


def _radiance_field(record: dict, model_uri: str, version: str, **timing) -> RadianceField:
    """The task's result from its `metrics.json` record."""
    return RadianceField(model_uri=model_uri, version=version, run_id=record["run_id"], fingerprint=record["fingerprint"],
                         model=record["model"], psnr=record["psnr"], ssim=record["ssim"], steps=record["steps"],
                         train_seconds=record["seconds"], images=record["images"], record=record, **timing)


def write_nerf_pictures(renderer, test, folder: Path, measured, pictures: NerfPicturesConfig, train_seconds: float,
                        chunk: int) -> dict[str, str]:
    """test_views.png and depth.png from the measurement, and the turntable within its budget
    (`inrcore.nerf.pictures.picture_budget`); returns {picture name: path}."""
    images = {name: str(path) for name, path in write_test_pictures(measured, test, folder).items()}
    turntable = render_turntable(renderer, test, folder / "turntable.gif", pictures.turntable_frames,
                                 pictures.turntable_size, picture_budget(pictures, train_seconds), chunk)
    if turntable.path is not None:
        images["turntable"] = str(turntable.path)
    return images
