"""Writing a scene in the Blender format (transforms_<split>.json and PNG images).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from inrcore.nerf.scenes import ROTATION_TOLERANCE, transforms_path


def write_scene(folder, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], camera_angle_x: float,
                near: float, far: float, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a Blender-layout scene that `load_scene_split` reads back, atomically as a whole.

    For each split: `<split>/r_<i>.png` (the images, RGBA or RGB PNGs as given) and
    `transforms_<split>.json` = {"camera_angle_x", "near", "far", "frames": [{"file_path":
    "./<split>/r_<i>", "transform_matrix": pose i as 4 lists of 4}], **extra}. Everything is
    written into a fresh hidden sibling folder which is then renamed onto `folder` (an existing
    scene there is moved aside first and deleted after), so a crash never leaves a half-written
    scene at `folder`.

    Args:
        folder: the scene folder to create or replace (its parent is created if missing).
        splits: split name (letters, digits, "_" or "-"; "train", "val", "test" are the ones
            `scene_splits` finds) -> (images [N, H, W, 4] (RGBA, straight alpha) or [N, H, W, 3]
            uint8, poses [N, 4, 4] camera-to-world, rotation orthonormal), N >= 1.
        camera_angle_x: horizontal field of view in radians, in (0, pi).
        near, far: ray distance bounds, 0 <= near < far.
        extra: more JSON-ready top-level keys for every transforms file (not the four above).
    Returns:
        `folder` as a Path.
    Raises:
        ValueError: bad arrays, names or numbers (nothing is written then).
    """
    import os
    import shutil
    import uuid

    folder = Path(folder)
    if not splits:
        raise ValueError("write_scene needs at least one split")
    if not (isinstance(camera_angle_x, (int, float)) and 0.0 < camera_angle_x < math.pi):
        raise ValueError(f"camera_angle_x must be in (0, pi) radians, got {camera_angle_x!r}")
    if not (math.isfinite(near) and math.isfinite(far) and 0.0 <= near < far):
        raise ValueError(f"need 0 <= near < far, both finite, got near={near}, far={far}")
    extra = dict(extra or {})
    reserved = sorted(set(extra) & {"camera_angle_x", "near", "far", "frames"})
    if reserved:
        raise ValueError(f"extra must not set {', '.join(reserved)}: write_scene writes those")
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra is not JSON-ready: {exc}") from exc
    checked = {name: _scene_split_arrays(name, value) for name, value in splits.items()}
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")

    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.parent / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    temporary.mkdir()
    try:
        for name, (images, poses) in checked.items():
            (temporary / name).mkdir()
            frames = []
            for i, (image, pose) in enumerate(zip(images, poses)):
                Image.fromarray(np.ascontiguousarray(image)).save(temporary / name / f"r_{i}.png", format="PNG")
                frames.append({"file_path": f"./{name}/r_{i}", "transform_matrix": pose.tolist()})
            meta = {"camera_angle_x": float(camera_angle_x), "near": float(near), "far": float(far),
                    "frames": frames, **extra}
            with open(transforms_path(temporary, name), "w", encoding="utf-8") as handle:
                json.dump(meta, handle, indent=2)
        if folder.exists():
            old = folder.parent / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex}.old"
            os.rename(folder, old)
            try:
                os.rename(temporary, folder)
            except BaseException:
                os.rename(old, folder)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, folder)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return folder


def _scene_split_arrays(name: str, value: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One split's (images [N, H, W, 3|4] uint8, poses [N, 4, 4] float64), checked for `write_scene`."""
    import re

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"split names must be letters, digits, '_' or '-', got {name!r}")
    try:
        images, poses = value
    except (TypeError, ValueError) as exc:
        raise ValueError(f"split {name!r}: expected a pair (images, poses)") from exc
    images = np.asarray(images)
    poses = np.asarray(poses, dtype=np.float64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (3, 4) or 0 in images.shape:
        raise ValueError(f"split {name!r}: images must be uint8 [N, H, W, 4] or [N, H, W, 3] with N, H, W >= 1, "
                         f"got {images.dtype} {list(images.shape)}")
    if poses.shape != (len(images), 4, 4):
        raise ValueError(f"split {name!r}: poses must have shape [{len(images)}, 4, 4] (one per image), "
                         f"got {list(poses.shape)}")
    if not np.all(np.isfinite(poses)):
        raise ValueError(f"split {name!r}: poses have NaN or infinite entries")
    rotations = poses[:, :3, :3]
    error = np.abs(np.swapaxes(rotations, 1, 2) @ rotations - np.eye(3)).max(axis=(1, 2))  # [N]
    bottom = np.abs(poses[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)  # [N]
    bad = np.flatnonzero((error > ROTATION_TOLERANCE) | (bottom > ROTATION_TOLERANCE))
    if len(bad):
        raise ValueError(f"split {name!r}: pose {int(bad[0])} is not rigid (rotation not orthonormal or last row "
                         "not [0, 0, 0, 1])")
    return images, poses
