"""Cameras: pinhole intrinsics, look-at frames and camera axes from angles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np


WORLD_UP = np.array([0.0, 1.0, 0.0])


def look_at_axes(towards: np.ndarray, world_up: np.ndarray,
                 fallback_right: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The sideways and upward axes of cameras that look along -towards, upright for world_up.

    Args:
        towards [..., 3]: unit vectors from the looked-at point to each camera (the camera's
            backward axis, +z of a camera-to-world pose).
        world_up [3] or [..., 3]: the world direction that should point up in the picture.
        fallback_right [3] or None: the right axis of cameras whose world_up x towards is
            shorter than 1e-9 (looking along world_up); None: no such cameras are expected.
    Returns:
        right [..., 3] = world_up x towards normalised (the image's +column direction, camera +x)
        and up [..., 3] = towards x right (its -row direction, camera +y).
    """
    right = np.cross(world_up, towards)
    length = np.linalg.norm(right, axis=-1, keepdims=True)
    if fallback_right is not None:
        parallel = length[..., 0] < 1e-9
        right[parallel] = fallback_right
        length[parallel] = 1.0
    right = right / length
    return right, np.cross(towards, right)


def camera_axes(azimuth_deg: float, elevation_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The orthonormal camera frame for a view direction (`look_at_axes` with y up).

    Azimuth turns the camera about y from +z towards +x, elevation lifts it towards +y; straight
    down or up (elevation +-90) the frame is the limit of those at nearby elevations.

    Returns:
        towards_camera [3] (unit vector from the origin to the camera, also the light
        direction), right [3] and up [3] (the image's +column and -row directions).
    """
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    towards_camera = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    world_up = WORLD_UP
    if abs(np.cos(el)) < 1e-9:  # looking straight down or up: y is the view axis
        world_up = np.array([-np.sin(az), 0.0, -np.cos(az)]) * np.sign(np.sin(el))
    right, up = look_at_axes(towards_camera, world_up)
    return towards_camera, right, up


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: image size in pixels, focal lengths and principal point in pixels.

    Pixel (row v, column u) has its centre at (u + 0.5, v + 0.5); the principal point (cx, cy)
    is in the same coordinates (cx = width / 2 is the middle of the image).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Intrinsics.{name} must be a positive integer, got {value!r}")
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0):
                raise ValueError(f"Intrinsics.{name} must be a positive finite number, got {value!r}")
        for name in ("cx", "cy"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.number)) and math.isfinite(value)):
                raise ValueError(f"Intrinsics.{name} must be a finite number, got {value!r}")

    @classmethod
    def from_camera_angle_x(cls, width: int, height: int, camera_angle_x: float) -> "Intrinsics":
        """The Blender camera: fx = fy = 0.5 width / tan(0.5 camera_angle_x), centred principal point."""
        focal = 0.5 * width / math.tan(0.5 * camera_angle_x)
        return cls(int(width), int(height), focal, focal, width / 2.0, height / 2.0)

    def downscaled(self, factor: int) -> "Intrinsics":
        """The camera of the image shrunk by an integer factor (see the module docstring).

        width // factor, height // factor, and fx, fy, cx, cy divided by factor.
        """
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"downscale factor must be a positive integer, got {factor!r}")
        if self.width // factor < 1 or self.height // factor < 1:
            raise ValueError(f"cannot downscale a {self.width}x{self.height} image by {factor}")
        return Intrinsics(self.width // int(factor), self.height // int(factor), self.fx / factor, self.fy / factor,
                          self.cx / factor, self.cy / factor)

    def scaled_to(self, longest: int) -> "Intrinsics":
        """The same view in a smaller picture: the longer side `longest` pixels (never enlarged).

        With s = longest / max(width, height) < 1: width and height times s (rounded, at least
        1), fx, cx scaled by the new width / width and fy, cy by the new height / height, so
        the picture frames the same field of view.
        """
        if isinstance(longest, bool) or not isinstance(longest, (int, np.integer)) or longest < 1:
            raise ValueError(f"picture size must be a positive integer, got {longest!r}")
        scale = longest / max(self.width, self.height)
        if scale >= 1.0:
            return self
        width, height = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        sx, sy = width / self.width, height / self.height
        return Intrinsics(width, height, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy)


def look_at_origin(positions: np.ndarray) -> np.ndarray:
    """Camera-to-world poses [N, 4, 4] float64 of cameras at positions [N, 3] looking at the origin, y up.

    The camera's z axis points from the origin to the camera, its x axis is horizontal
    (y_world x z, normalised) and its y axis is z x x (`look_at_axes`). A camera straight above
    or below the origin (on the y axis) gets x = world +x.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    distance = np.linalg.norm(positions, axis=1, keepdims=True)  # [N, 1]
    if not np.all(distance > 0):
        raise ValueError("a camera cannot sit at the origin it looks at")
    backward = positions / distance  # camera +z
    right, up = look_at_axes(backward, WORLD_UP, fallback_right=np.array([1.0, 0.0, 0.0]))  # [N, 3] each
    poses = np.zeros((len(positions), 4, 4))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2], poses[:, :3, 3] = right, up, backward, positions
    poses[:, 3, 3] = 1.0
    return poses
