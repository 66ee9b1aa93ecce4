"""A scene per shape for the NeRF flow: a Blender-format folder rendered from a mesh, or one given as it is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from prefect import task

from inrcore.errors import SceneError
from inrcore.files import read_json, write_json_atomic
from inrcore.geometry.meshes import file_sha256
from inrcore.nerf.meshscenes import scene_from_mesh
from inrcore.nerf.scenes import scene_fingerprint, scene_splits
from inrcore.nerf.settings import MeshSceneConfig
from inrcore.settings import config_to_dict, fingerprint

from ..options import retry_unless_bad_input
from ..results import StageResult


@dataclass(frozen=True, kw_only=True)
class Scene(StageResult):
    """A shape's scene folder (Blender format) and the fingerprint of what made it."""

    scene_dir: str
    fingerprint: str


@task(name="make-scene", retries=1, retry_condition_fn=retry_unless_bad_input)
def make_scene(shape_id: str, source: str, out_dir: str, scene: MeshSceneConfig) -> Scene:
    """The scene folder of one shape: `source` itself when it holds `transforms_train.json`,
    else `<out_dir>/scenes/<shape_id>` rendered from the mesh `source` (reused when made from
    the same file and settings)."""
    start = time.perf_counter()
    if Path(source).is_dir():
        if "train" not in scene_splits(source):
            raise SceneError(Path(source) / "transforms_train.json", "missing: a scene folder needs its training views")
        return Scene(scene_dir=str(source), fingerprint=scene_fingerprint(source), reused=True,
                     seconds=time.perf_counter() - start)
    config = scene
    source_hash = file_sha256(source) if Path(source).is_file() else None
    key = fingerprint("scene", source_hash, config)
    folder = Path(out_dir) / "scenes" / shape_id
    record_path = Path(out_dir) / "scenes" / f"{shape_id}.json"
    record = read_json(record_path)
    if source_hash and record and record.get("fingerprint") == key and folder.is_dir():
        return Scene(scene_dir=str(folder), fingerprint=key, reused=True, seconds=time.perf_counter() - start)
    scene_from_mesh(source, folder, config)  # raises ShapeError naming the file; writes the folder atomically
    write_json_atomic(record_path, {"fingerprint": key, "source": str(source), "scene": config_to_dict(config)})
    return Scene(scene_dir=str(folder), fingerprint=key, seconds=time.perf_counter() - start)
