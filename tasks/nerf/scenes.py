"""A scene per shape for the NeRF flow: a Blender-format folder rendered from a mesh, or one given as it is.

Scenes live at paths or URLs (`tasks.locations`): a mesh at a URL is copied locally to be rendered, a scene
rendered for a run folder at a URL is made locally and put there file by file, and its record is written
last, so a record always vouches for a whole folder. Readers take a local copy (`local_scene`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from prefect import task

from inrcore.errors import SceneError, ShapeError
from inrcore.geometry.meshes import file_sha256
from inrcore.nerf.meshscenes import scene_from_mesh
from inrcore.nerf.scenes import scene_fingerprint, scene_splits
from inrcore.nerf.settings import MeshSceneConfig
from inrcore.settings import config_to_dict, fingerprint

from .. import locations
from ..options import retry_unless_bad_input
from ..results import StageResult


@dataclass(frozen=True, kw_only=True)
class Scene(StageResult):
    """A shape's scene folder (Blender format; a path or URL) and the fingerprint of what made it."""

    scene_dir: str
    fingerprint: str


@contextlib.contextmanager
def local_scene(location) -> Iterator[str]:
    """A local folder holding the scene at `location`: the folder itself, or a temporary copy of one at a
    URL. A SceneError about a file of the copy is raised again naming that file (in its path and its
    problem) at the URL."""
    def missing() -> SceneError:
        return SceneError(locations.join(location, "transforms_train.json"), "missing: no scene there")

    with locations.local_folder(location, missing=missing) as folder:
        copy, url = folder + os.sep, str(location).rstrip("/") + "/"
        try:
            yield folder
        except ShapeError as exc:
            if folder == str(location) or not exc.path.startswith(copy):
                raise
            raise type(exc)(exc.path.replace(copy, url), exc.problem.replace(copy, url)) from None


def is_scene_folder(source) -> bool:
    """Whether `source` is a folder (a local one, or a prefix holding objects at a URL) rather than a file."""
    if not locations.is_url(source):
        return locations.local_path(source).is_dir()
    return not locations.is_file(source) and locations.exists(source)


@task(name="make-scene", retries=1, retry_condition_fn=retry_unless_bad_input)
def make_scene(shape_id: str, source: str, out_dir: str, scene: MeshSceneConfig) -> Scene:
    """The scene folder of one shape: `source` itself when it is a folder (it must hold
    `transforms_train.json`), else `<out_dir>/scenes/<shape_id>` rendered from the mesh `source` (reused
    when made from the same file and settings)."""
    start = time.perf_counter()
    if is_scene_folder(source):
        with local_scene(source) as folder:
            if "train" not in scene_splits(folder):
                raise SceneError(locations.join(source, "transforms_train.json"),
                                 "missing: a scene folder needs its training views")
            key = scene_fingerprint(folder)
        return Scene(scene_dir=str(source), fingerprint=key, reused=True, seconds=time.perf_counter() - start)
    config = scene
    folder = locations.join(out_dir, "scenes", shape_id)
    record_path = locations.join(out_dir, "scenes", f"{shape_id}.json")
    with locations.input_file(source) as mesh:  # a missing file: ShapeError naming `source`
        key = fingerprint("scene", file_sha256(mesh), config)
        record = locations.read_json(record_path)
        if (record and record.get("fingerprint") == key
                and locations.is_file(locations.join(folder, "transforms_train.json"))):
            return Scene(scene_dir=folder, fingerprint=key, reused=True, seconds=time.perf_counter() - start)
        locations.remove(record_path)  # an old record must not vouch for a folder replaced in part
        if not locations.is_url(folder):
            # raises ShapeError naming the file; writes the folder atomically
            scene_from_mesh(mesh, folder, config, source=str(source))
        else:
            with tempfile.TemporaryDirectory(prefix="inrflow-scene-") as local:
                made = scene_from_mesh(mesh, Path(local) / shape_id, config, source=str(source))
                locations.remove(folder)
                locations.put_folder(made, folder)
    locations.write_json(record_path, {"fingerprint": key, "source": str(source), "scene": config_to_dict(config)})
    return Scene(scene_dir=folder, fingerprint=key, seconds=time.perf_counter() - start)
