"""NeRF stages: a scene from each shape, its rays into Zarr, a radiance field trained from them.

- `make_scene`: a mesh -> a Blender-format scene folder `<out>/scenes/<id>` (rendered views,
  `transforms_{train,test}.json`); a folder that already holds `transforms_train.json` is
  used as it is.
- `generate_rays`: the scene's training views -> `rays/<id>/{origins,directions,colours}`
  [N, 3] float32 in the Zarr store, in one fixed random order, in chunks of
  `rays.chunk` rays, so that streaming random chunks gives well-mixed batches.
- `train_nerf`: streams shuffled batches from those chunks (`inrcore.nerf.raybatches`), trains
  (`inrcore.nerf.training`) with MLflow logging (loss and PSNR; test PSNR/SSIM and a render every
  `eval_every` steps), checkpoints into `<out>/checkpoints/<id>.pt` (a re-run after a crash
  resumes there), measures the test views and writes `<out>/nerf/<id>/metrics.json`, then its
  pictures, and registers the field as `models:/<dataset>-<id>-nerf@<alias>`.
Each keeps a "finished" record, so a re-run reuses what is done.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Optional

import numpy as np
from prefect import task

from inrcore.device import resolve_device
from inrcore.errors import SceneError
from inrcore.geometry.meshes import file_sha256
from inrcore.nerf.meshscenes import scene_from_mesh
from inrcore.nerf.pictures import measure_test_views, picture_budget, render_turntable, write_test_pictures
from inrcore.nerf.raybatches import ShuffledRayBatches, shuffled_rays_of_split
from inrcore.nerf.scenes import load_scene_split, scene_splits
from inrcore.nerf.training import save_radiance_field, train_radiance_field
from inrcore.settings import (
    MeshSceneConfig,
    NerfConfig,
    NerfPicturesConfig,
    RaysConfig,
    config_from_dict,
    config_to_dict,
    fingerprint,
)

from . import registry
from .options import retry_unless_bad_input
from .store import (
    finished_attrs,
    fresh_group,
    mark_finished,
    open_store,
    read_json,
    remove_group,
    write_json_atomic,
)


def scene_fingerprint(folder) -> str:
    """A hash of every file of a scene folder (names and bytes), in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@task(name="make-scene", retries=1, retry_condition_fn=retry_unless_bad_input)
def make_scene(shape_id: str, source: str, out_dir: str, scene: dict) -> dict:
    """The scene folder of one shape: `source` itself when it holds `transforms_train.json`,
    else `<out_dir>/scenes/<shape_id>` rendered from the mesh `source` (reused when made from
    the same file and settings). Returns {"scene_dir", "fingerprint", "reused", "seconds"}."""
    start = time.perf_counter()
    if Path(source).is_dir():
        if "train" not in scene_splits(source):
            raise SceneError(Path(source) / "transforms_train.json", "missing: a scene folder needs its training views")
        return {"scene_dir": str(source), "fingerprint": scene_fingerprint(source), "reused": True,
                "seconds": time.perf_counter() - start}
    config = config_from_dict(MeshSceneConfig, scene, "scene")
    source_hash = file_sha256(source) if Path(source).is_file() else None
    key = fingerprint("scene", source_hash, config)
    folder = Path(out_dir) / "scenes" / shape_id
    record_path = Path(out_dir) / "scenes" / f"{shape_id}.json"
    record = read_json(record_path)
    if source_hash and record and record.get("fingerprint") == key and folder.is_dir():
        return {"scene_dir": str(folder), "fingerprint": key, "reused": True, "seconds": time.perf_counter() - start}
    scene_from_mesh(source, folder, config)  # raises ShapeError naming the file; writes the folder atomically
    write_json_atomic(record_path, {"fingerprint": key, "source": str(source), "scene": config_to_dict(config)})
    return {"scene_dir": str(folder), "fingerprint": key, "reused": False, "seconds": time.perf_counter() - start}


@task(name="generate-rays", retries=1, retry_condition_fn=retry_unless_bad_input)
def generate_rays(shape_id: str, scene_dir: str, scene_key: str, store_url: str, rays: dict) -> dict:
    """Write the training rays of a scene into `rays/<shape_id>` of the Zarr store.

    Returns {"path", "fingerprint", "count", "near", "far", "reused", "seconds"}.
    """
    start = time.perf_counter()
    config = config_from_dict(RaysConfig, rays, "rays")
    key = fingerprint("rays", scene_key, config)
    root = open_store(store_url)
    path = f"rays/{shape_id}"
    done = finished_attrs(root, path, key)
    if done is not None:
        return {"path": path, "fingerprint": key, "count": done["count"], "near": done["near"], "far": done["far"],
                "reused": True, "seconds": time.perf_counter() - start}
    split = load_scene_split(scene_dir, "train", config.downscale)  # raises SceneError naming the file
    arrays = dict(zip(("origins", "directions", "colours"), shuffled_rays_of_split(split, config.seed)))
    count = len(arrays["origins"])
    try:
        group = fresh_group(root, path)
        for name, values in arrays.items():
            array = group.create_array(name, shape=values.shape, dtype="float32", chunks=(config.chunk, 3))
            array[...] = values
        mark_finished(group, key, {"count": int(count), "near": split.near, "far": split.far,
                                   "scene_dir": str(scene_dir), "views": int(len(split.images)),
                                   "width": split.intrinsics.width, "height": split.intrinsics.height,
                                   "rays": config_to_dict(config)})
    except BaseException:
        remove_group(root, path)
        raise
    return {"path": path, "fingerprint": key, "count": int(count), "near": split.near, "far": split.far,
            "reused": False, "seconds": time.perf_counter() - start}


def zarr_ray_batches(store_url: str, path: str, batch_size: int, seed: int) -> ShuffledRayBatches:
    """Shuffled batches streamed from the chunks of `rays/<id>` (four chunks held at a time)."""
    group = open_store(store_url, mode="r")[path]
    arrays = [group[name] for name in ("origins", "directions", "colours")]
    chunk = arrays[0].chunks[0]
    count = arrays[0].shape[0]

    def read(i: int):
        part = slice(i * chunk, min(count, (i + 1) * chunk))
        return tuple(np.asarray(a[part]) for a in arrays)

    return ShuffledRayBatches(read, -(-count // chunk), batch_size, chunks_in_buffer=4, seed=seed)


def nerf_model_name(dataset: str, shape_id: str) -> str:
    return registry.model_name(dataset, f"{shape_id}-nerf")


@task(name="train-nerf", retries=1, retry_condition_fn=retry_unless_bad_input)
def train_nerf(shape_id: str, dataset: str, store_url: str, rays_path: str, rays_key: str, scene_dir: str,
               nerf: dict, downscale: int, out_dir: str, tracking_uri: str, experiment_id: str, alias: str,
               pictures: Optional[dict] = None) -> dict:
    """Train, measure, picture and register one shape's radiance field (see the module docstring).

    Numbers come first: `<out>/nerf/<id>/metrics.json` is written (and the final PSNR/SSIM
    logged) as soon as the test views are measured ("stage": "measured"), then the pictures
    (`NerfPicturesConfig`: test_views.png, depth.png, a small turntable within its budget)
    are made, the field registered, and the record rewritten with "stage": "complete".
    Only a complete record is reused.

    Returns {"model_uri", "version", "run_id", "fingerprint", "psnr", "ssim", "steps", "seconds",
    "images", "reused"}.
    """
    start = time.perf_counter()
    config = config_from_dict(NerfConfig, nerf, "nerf")
    picture_settings = config_from_dict(NerfPicturesConfig, pictures, "pictures")
    key = fingerprint("nerf", rays_key, {k: v for k, v in config_to_dict(config).items() if k != "device"})
    name = nerf_model_name(dataset, shape_id)
    folder = Path(out_dir) / "nerf" / shape_id
    record_path = folder / "metrics.json"
    record = read_json(record_path)
    found = registry.find_model_version(tracking_uri, name, key)
    if (found is not None and record and record.get("fingerprint") == key
            and record.get("stage", "complete") == "complete"):  # records from before stages were complete
        registry.set_alias(tracking_uri, name, alias, found.version)
        return {**record, "model_uri": f"models:/{name}@{alias}", "version": found.version, "reused": True,
                "train_seconds": record["seconds"], "seconds": time.perf_counter() - start}

    device = resolve_device(config.device)
    group = open_store(store_url, mode="r")[rays_path]
    near, far = float(group.attrs["near"]), float(group.attrs["far"])
    test = load_scene_split(scene_dir, "test" if "test" in scene_splits(scene_dir) else "train", downscale)
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

    try:
        result = train_radiance_field(
            config, zarr_ray_batches(store_url, rays_path, config.batch_rays, config.seed), near, far, device,
            test=test, on_log=on_log, on_eval=on_eval,
            checkpoint_path=str(Path(out_dir) / "checkpoints" / f"{shape_id}.pt"), data_key=rays_key)
        weights = save_radiance_field(folder / "field.safetensors", result.renderer, config,
                                      {"shape_id": shape_id, "dataset": dataset, "fingerprint": key})
        measured = measure_test_views(result.renderer, test, picture_settings.test_views,
                                      picture_settings.shown_views, config.chunk_rays)
        outcome = {"fingerprint": key, "stage": "measured", "model": config.model, "psnr": measured.psnr,
                   "ssim": measured.ssim, "views": len(measured.indices), "steps": result.steps,
                   "seconds": result.seconds, "measure_seconds": measured.seconds,
                   "resumed_from": result.resumed_from, "images": {}, "run_id": run_id, "weights": str(weights)}
        write_json_atomic(record_path, outcome)
        registry.log_metrics(tracking_uri, run_id, {"test/psnr_final": measured.psnr, "test/ssim_final": measured.ssim,
                                                    "train/seconds_total": result.seconds,
                                                    "train/steps_total": result.steps}, result.steps)
        images = write_nerf_pictures(result.renderer, test, folder, measured, picture_settings, result.seconds,
                                     config.chunk_rays)
        for image in images.values():
            registry.log_artifact(tracking_uri, run_id, image, "renders")
        model_uri, version = registry.register_radiance_field(tracking_uri, run_id, name, alias, weights, key)
    except BaseException:
        registry.end_run(tracking_uri, run_id, "FAILED")
        raise
    registry.end_run(tracking_uri, run_id)
    outcome.update(stage="complete", images=images)
    write_json_atomic(record_path, outcome)
    return {**outcome, "model_uri": model_uri, "version": version, "reused": False,
            "train_seconds": result.seconds, "seconds": time.perf_counter() - start}


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
