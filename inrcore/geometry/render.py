"""Shaded pictures of meshes by ray casting, for reports.

The camera is orthographic and looks at the origin. Its framing depends only on `bound`:
the half-width of the view (along the shorter image side) is sqrt(3) * bound, the radius
of the sphere around the cube [-bound, bound]^3, so anything inside that cube is in the
picture whatever the viewing direction, and an input mesh and its reconstruction rendered
with the same arguments line up pixel for pixel. One world unit spans
min(H, W) / (2 sqrt(3) bound) pixels.

Directions: y is up; azimuth turns the camera about y from +z towards +x, elevation lifts
it towards +y. Shading is flat Lambert with a headlight (the light comes from the camera),
two-sided (|n . l|) so open meshes and flipped faces render, plus some ambient light, on
white.
"""

from __future__ import annotations

import numpy as np
import trimesh

from inrcore.geometry.cameras import camera_axes
from inrcore.geometry.settings import ViewConfig


AMBIENT = 0.15
BACKGROUND = 255


def pixel_rays(
    size: tuple[int, int], azimuth_deg: float, elevation_deg: float, bound: float, distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One orthographic ray through the centre of each pixel, in row-major order.

    Args:
        size: (height, width) in pixels.
        distance: how far from the origin the rays start (beyond everything to be seen).
    Returns:
        origins [H*W, 3] and unit directions [H*W, 3] (all the same, towards the origin).
    """
    height, width = size
    towards_camera, right, up = camera_axes(azimuth_deg, elevation_deg)
    pixel = 2.0 * np.sqrt(3.0) * bound / min(height, width)  # world units per pixel
    x = (np.arange(width) + 0.5 - width / 2.0) * pixel  # [W]
    y = (height / 2.0 - np.arange(height) - 0.5) * pixel  # [H]
    origins = (
        distance * towards_camera
        + x[None, :, None] * right
        + y[:, None, None] * up
    ).reshape(-1, 3)  # [H*W, 3]
    directions = np.broadcast_to(-towards_camera, origins.shape).copy()
    return origins, directions


def render_mesh(mesh: trimesh.Trimesh, view: ViewConfig = ViewConfig()) -> np.ndarray:
    """A flat-shaded picture of `mesh` seen as `view` says: its size (height, width) is the
    picture's, its camera angles and `bound` frame it (see the module docstring), its colour lights it.

    Args:
        mesh: any triangle mesh; one with no faces gives a white picture.
    Returns:
        image [H, W, 3] uint8.
    """
    (height, width), bound = view.size, view.bound
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    if len(mesh.faces) == 0:
        return image

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    reach = float(np.linalg.norm(vertices, axis=1).max())
    distance = max(reach, np.sqrt(3.0) * bound) + bound
    origins, directions = pixel_rays((height, width), view.azimuth_deg, view.elevation_deg, bound, distance)
    hit_face = np.asarray(mesh.ray.intersects_first(ray_origins=origins, ray_directions=directions))  # [H*W]
    hit = hit_face >= 0

    towards_camera = -directions[0]
    facing = np.abs(np.asarray(mesh.face_normals)[hit_face[hit]] @ towards_camera)  # [hits]
    light = AMBIENT + (1.0 - AMBIENT) * facing  # [hits]
    image.reshape(-1, 3)[hit] = shade(light, view.color)
    return image


def shade(light: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    """Pixel colours of lit surface: light [K] in [0, 1] times RGB `color` -> [K, 3] uint8."""
    rgb = np.clip(np.asarray(color, dtype=np.float64), 0.0, 1.0)
    return np.rint(255.0 * light[:, None] * rgb[None, :]).astype(np.uint8)


def render_point_cloud(points: np.ndarray, normals: np.ndarray, view: ViewConfig = ViewConfig(),
                       radius: int = 1) -> np.ndarray:
    """Square splats of an oriented cloud, with `render_mesh`'s camera, framing and shading (`view`).

    Each point covers a (2 radius + 1)^2 pixel square, nearer points hiding farther ones,
    lit by |n . towards_camera| plus ambient light, on white.

    Args:
        points [P, 3], normals [P, 3]: the cloud and its unit normals.
    Returns:
        image [H, W, 3] uint8 (H, W = view.size).
    """
    (height, width), bound = view.size, view.bound
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    towards_camera, right, up = camera_axes(view.azimuth_deg, view.elevation_deg)
    pixel = 2.0 * np.sqrt(3.0) * bound / min(height, width)  # world units per pixel
    column = np.floor(points @ right / pixel + width / 2.0).astype(np.int64)  # [P]
    row = np.floor(height / 2.0 - points @ up / pixel).astype(np.int64)  # [P]
    depth = points @ towards_camera  # [P], larger is nearer the camera
    light = AMBIENT + (1.0 - AMBIENT) * np.abs(normals @ towards_camera)  # [P]

    offsets = np.arange(-radius, radius + 1)
    d_row, d_col = (o.reshape(-1) for o in np.meshgrid(offsets, offsets, indexing="ij"))  # [K]
    rows, cols = (row[:, None] + d_row).reshape(-1), (column[:, None] + d_col).reshape(-1)  # [P*K]
    which = np.repeat(np.arange(len(points)), len(d_row))  # [P*K]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    pixel_index, which = rows[inside] * width + cols[inside], which[inside]
    order = np.lexsort((-depth[which], pixel_index))  # per pixel, nearest point first
    pixel_index, which = pixel_index[order], which[order]
    first = np.ones(len(pixel_index), dtype=bool)
    first[1:] = pixel_index[1:] != pixel_index[:-1]
    image.reshape(-1, 3)[pixel_index[first]] = shade(light[which[first]], view.color)
    return image


