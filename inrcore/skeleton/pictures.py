"""`skeleton.png`: a skeleton drawn inside its see-through input surface.

The camera, framing and shading are those of `inrcore.geometry.render.render_mesh` (an
orthographic camera looking at the origin, framed by `view.bound`), so a skeleton lines up pixel
for pixel with the renders of its shape. The skeleton is drawn first, with a depth buffer: its
triangles ray-cast and Lambert-shaded in orange, its edges as lines and its points as discs of
fixed sizes in pixels (they mark where the balls are, not how big; smaller above `DENSE_POINTS`
points; both grow with the picture, one step per 256 pixels of its shorter side). Over it goes the input:
a mesh's nearest surface blended at `SURFACE_OPACITY` wherever it is in front of the skeleton,
or, for a point cloud, its points as faint dots where they are in front.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import trimesh

from inrcore.geometry.cameras import camera_axes
from inrcore.geometry.render import AMBIENT, BACKGROUND, pixel_rays, shade
from inrcore.geometry.settings import ViewConfig


TRIANGLE_COLOR = (1.0, 0.6, 0.1)  # orange, shaded
EDGE_COLOR = (0.8, 0.25, 0.0)  # darker orange, flat
POINT_COLOR = (0.55, 0.0, 0.0)  # dark red, flat
CLOUD_COLOR = (0.35, 0.4, 0.5)
SURFACE_OPACITY = 0.3
CLOUD_OPACITY = 0.3
DENSE_POINTS = 256  # above this many skeletal points their discs are drawn smaller


def render_skeleton(
    surface: Optional[trimesh.Trimesh],
    surface_points: Optional[np.ndarray],
    points: np.ndarray,
    radii: np.ndarray,
    edges: np.ndarray,
    faces: np.ndarray,
    view: ViewConfig = ViewConfig(),
) -> np.ndarray:
    """A picture of a skeleton inside its input, seen as `view` says (size, angles, `bound`).

    Args:
        surface: the input mesh, drawn translucent (None: none).
        surface_points [P, 3]: the input points, drawn as faint dots when `surface` is None.
        points [K, 3], radii [K], edges [E, 2], faces [F, 3]: the skeleton (radii are not drawn).
    Returns:
        image [H, W, 3] uint8, white where nothing is.
    """
    (height, width), bound = view.size, view.bound
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    towards_camera, right, up = camera_axes(view.azimuth_deg, view.elevation_deg)
    pixel = 2.0 * np.sqrt(3.0) * bound / min(height, width)  # world units per pixel
    scale = max(1, round(min(height, width) / 256))  # line and disc sizes grow with the picture
    everything = [points] + ([np.asarray(surface.vertices, dtype=np.float64)] if surface is not None else [])
    reach = max([float(np.linalg.norm(p, axis=1).max()) for p in everything if len(p)] + [0.0])
    distance = max(reach, np.sqrt(3.0) * bound) + bound
    origins, directions = pixel_rays((height, width), view.azimuth_deg, view.elevation_deg, bound, distance)

    depth = np.full(height * width, -np.inf)  # along towards_camera: larger is nearer
    rgb = np.full((height * width, 3), float(BACKGROUND))
    if len(faces):
        hit, face_depth, light = _first_hits(trimesh.Trimesh(points, faces, process=False), origins, directions)
        depth[hit], rgb[hit] = face_depth, shade(light, TRIANGLE_COLOR)
    frame = (towards_camera, right, up, pixel, height, width)
    if len(edges):
        a, b = points[edges[:, 0]], points[edges[:, 1]]
        steps = np.maximum(np.ceil(np.linalg.norm(b - a, axis=1) / (0.5 * pixel)).astype(int), 1)  # [E]
        which = np.repeat(np.arange(len(edges)), steps + 1)
        t = np.concatenate([np.linspace(0.0, 1.0, s + 1) for s in steps])
        along = a[which] + t[:, None] * (b - a)[which]
        _splat(along, scale, 1.5 * pixel, EDGE_COLOR, frame, depth, rgb)
    if len(points):
        _splat(points, (2 if len(points) <= DENSE_POINTS else 1) * scale, 3.0 * pixel, POINT_COLOR, frame, depth, rgb)

    if surface is not None and len(surface.faces):
        hit, surface_depth, light = _first_hits(surface, origins, directions)
        front = hit[surface_depth >= depth[hit]]
        colors = shade(light[surface_depth >= depth[hit]], view.color).astype(np.float64)
        rgb[front] = SURFACE_OPACITY * colors + (1.0 - SURFACE_OPACITY) * rgb[front]
    elif surface_points is not None and len(surface_points):
        cloud_depth = np.full(height * width, -np.inf)
        cloud_rgb = np.zeros((height * width, 3))
        _splat(np.asarray(surface_points, dtype=np.float64).reshape(-1, 3), 0, 0.0, CLOUD_COLOR, frame,
               cloud_depth, cloud_rgb)
        front = cloud_depth > depth
        rgb[front] = CLOUD_OPACITY * cloud_rgb[front] + (1.0 - CLOUD_OPACITY) * rgb[front]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(height, width, 3)


def _first_hits(mesh: trimesh.Trimesh, origins: np.ndarray, directions: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rays that hit `mesh` [hits] (indices), the depth of each first hit along -direction
    [hits] and its light [hits] (ambient plus the headlight's |n . l|, as `render_mesh`)."""
    face, ray, location = mesh.ray.intersects_id(ray_origins=origins, ray_directions=directions,
                                                 multiple_hits=False, return_locations=True)
    ray, face = np.asarray(ray, dtype=np.int64), np.asarray(face, dtype=np.int64)
    towards_camera = -directions[0]
    facing = np.abs(np.asarray(mesh.face_normals)[face] @ towards_camera)
    return ray, np.asarray(location).reshape(-1, 3) @ towards_camera, AMBIENT + (1.0 - AMBIENT) * facing


def _splat(spots: np.ndarray, radius: int, lift: float, color, frame, depth: np.ndarray, rgb: np.ndarray) -> None:
    """Draw round dots of `radius` pixels (0: one pixel) at spots [S, 3] in a flat `color` into
    the buffers depth [H*W] and rgb [H*W, 3] where they are nearer than what is there; `lift`
    (world units) brings them that much nearer, so that edges show on their triangles and points
    on their edges."""
    towards_camera, right, up, pixel, height, width = frame
    column = np.floor(spots @ right / pixel + width / 2.0).astype(np.int64)  # [S]
    row = np.floor(height / 2.0 - spots @ up / pixel).astype(np.int64)  # [S]
    spot_depth = spots @ towards_camera + lift  # [S]
    offsets = np.arange(-radius, radius + 1)
    d_row, d_col = (o.reshape(-1) for o in np.meshgrid(offsets, offsets, indexing="ij"))
    disc = d_row**2 + d_col**2 <= radius * (radius + 1)
    d_row, d_col = d_row[disc], d_col[disc]
    rows, cols = (row[:, None] + d_row).reshape(-1), (column[:, None] + d_col).reshape(-1)
    which = np.repeat(np.arange(len(spots)), len(d_row))
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    index, which = rows[inside] * width + cols[inside], which[inside]
    order = np.lexsort((-spot_depth[which], index))  # per pixel, the nearest spot first
    index, which = index[order], which[order]
    first = np.ones(len(index), dtype=bool)
    first[1:] = index[1:] != index[:-1]
    index, nearest = index[first], spot_depth[which[first]]
    nearer = nearest > depth[index]
    depth[index[nearer]] = nearest[nearer]
    rgb[index[nearer]] = 255.0 * np.asarray(color, dtype=np.float64)
