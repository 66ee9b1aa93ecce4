"""A scene's training rays in the Zarr store: written once in one random order, streamed back in shuffled batches.

`generate_rays` writes `rays/<id>/{origins,directions,colours}` [N, 3] float32 in chunks of
`rays.chunk` rays, so that streaming random chunks (`zarr_ray_batches`) gives well-mixed batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from prefect import task

from inrcore.nerf.raybatches import ShuffledRayBatches, shuffled_rays_of_split
from inrcore.nerf.scenes import load_scene_split
from inrcore.nerf.settings import RaysConfig
from inrcore.settings import config_to_dict, fingerprint

from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import finished_attrs, fresh_group, mark_finished, open_store, remove_group
from .scenes import local_scene


@dataclass(frozen=True, kw_only=True)
class Rays(StageResult):
    """A scene's rays in the store: the group at `path`, its fingerprint, how many, and the scene's
    near and far bounds."""

    path: str
    fingerprint: str
    count: int
    near: float
    far: float


@task(name="generate-rays", retries=1, retry_condition_fn=retry_unless_bad_input)
def generate_rays(shape_id: str, scene_dir: str, scene_key: str, store_url: str, rays: RaysConfig) -> Rays:
    """Write the training rays of a scene into `rays/<shape_id>` of the Zarr store."""
    start = time.perf_counter()
    config = rays
    key = fingerprint("rays", scene_key, config)
    root = open_store(store_url)
    path = f"rays/{shape_id}"
    done = finished_attrs(root, path, key)
    if done is not None:
        return Rays(path=path, fingerprint=key, count=done["count"], near=done["near"], far=done["far"], reused=True,
                    seconds=time.perf_counter() - start)
    with local_scene(scene_dir) as folder:  # a scene at a URL is read from a local copy
        split = load_scene_split(folder, "train", config.downscale)  # raises SceneError naming the file
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
    return Rays(path=path, fingerprint=key, count=int(count), near=split.near, far=split.far,
                seconds=time.perf_counter() - start)


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
