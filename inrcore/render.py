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

import os
import uuid
from pathlib import Path

import numpy as np
import trimesh

AMBIENT = 0.15
BACKGROUND = 255


def camera_axes(azimuth_deg: float, elevation_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The orthonormal camera frame for a view direction.

    Returns:
        towards_camera [3] (unit vector from the origin to the camera, also the light
        direction), right [3] and up [3] (the image's +column and -row directions).
    """
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    towards_camera = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    world_up = np.array([0.0, 1.0, 0.0])
    if abs(np.cos(el)) < 1e-9:  # looking straight down or up: y is the view axis
        world_up = np.array([-np.sin(az), 0.0, -np.cos(az)]) * np.sign(np.sin(el))
    right = np.cross(world_up, towards_camera)
    right /= np.linalg.norm(right)
    up = np.cross(towards_camera, right)
    return towards_camera, right, up


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


def render_mesh(
    mesh: trimesh.Trimesh,
    size: tuple[int, int] = (256, 256),
    azimuth_deg: float = 35.0,
    elevation_deg: float = 25.0,
    bound: float = 1.0,
    color: tuple[float, float, float] = (0.75, 0.8, 0.9),
) -> np.ndarray:
    """A flat-shaded picture of `mesh` seen from (azimuth, elevation), framed by `bound`.

    Args:
        mesh: any triangle mesh; one with no faces gives a white picture.
        size: (height, width) in pixels, the shape of the result.
        azimuth_deg, elevation_deg: where the camera is (see the module docstring).
        bound: the cube [-bound, bound]^3 always fits in the view.
        color: the surface's RGB in [0, 1] under full light.
    Returns:
        image [H, W, 3] uint8.
    """
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be (height, width) of positive pixels, got {size}")
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound}")
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    if len(mesh.faces) == 0:
        return image

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    reach = float(np.linalg.norm(vertices, axis=1).max())
    distance = max(reach, np.sqrt(3.0) * bound) + bound
    origins, directions = pixel_rays((height, width), azimuth_deg, elevation_deg, bound, distance)
    hit_face = np.asarray(mesh.ray.intersects_first(ray_origins=origins, ray_directions=directions))  # [H*W]
    hit = hit_face >= 0

    towards_camera = -directions[0]
    facing = np.abs(np.asarray(mesh.face_normals)[hit_face[hit]] @ towards_camera)  # [hits]
    light = AMBIENT + (1.0 - AMBIENT) * facing  # [hits]
    image.reshape(-1, 3)[hit] = shade(light, color)
    return image


def shade(light: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    """Pixel colours of lit surface: light [K] in [0, 1] times RGB `color` -> [K, 3] uint8."""
    rgb = np.clip(np.asarray(color, dtype=np.float64), 0.0, 1.0)
    return np.rint(255.0 * light[:, None] * rgb[None, :]).astype(np.uint8)


def render_point_cloud(
    points: np.ndarray,
    normals: np.ndarray,
    size: tuple[int, int] = (256, 256),
    azimuth_deg: float = 35.0,
    elevation_deg: float = 25.0,
    bound: float = 1.0,
    color: tuple[float, float, float] = (0.75, 0.8, 0.9),
    radius: int = 1,
) -> np.ndarray:
    """Square splats of an oriented cloud, with `render_mesh`'s camera, framing and shading.

    Each point covers a (2 radius + 1)^2 pixel square, nearer points hiding farther ones,
    lit by |n . towards_camera| plus ambient light, on white.

    Args:
        points [P, 3], normals [P, 3]: the cloud and its unit normals.
    Returns:
        image [H, W, 3] uint8 (H, W = size).
    """
    height, width = (int(s) for s in size)
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    towards_camera, right, up = camera_axes(azimuth_deg, elevation_deg)
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
    image.reshape(-1, 3)[pixel_index[first]] = shade(light[which[first]], color)
    return image


def side_by_side(images: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Images placed left to right, `gap` white pixels apart, top-aligned on white.

    Args:
        images: each [H_i, W_i, 3] or [H_i, W_i, 4] uint8; if any has alpha, so does the result.
    Returns:
        [max H_i, sum W_i + gap * (n - 1), 3 or 4] uint8.
    """
    if not images:
        raise ValueError("side_by_side needs at least one image")
    for i, image in enumerate(images):
        _check_image(image, f"images[{i}]")
    channels = max(image.shape[2] for image in images)
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, channels), 255, dtype=np.uint8)
    column = 0
    for image in images:
        h, w, c = image.shape
        canvas[:h, column : column + w, :c] = image
        column += w + gap
    return canvas


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write `image` [H, W, 3 or 4] uint8 as a PNG at `path`, atomically.

    The picture is written under a temporary name in the same folder (created if missing)
    and renamed into place, so readers never see half a file. Returns the path.
    """
    _check_image(image, "image")
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is a declared dependency
        raise ImportError("write_png needs Pillow: pip install pillow") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name opened exclusively (not mkstemp, whose 0600 mode would stick to the PNG).
    temporary = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "xb") as stream:
            Image.fromarray(np.ascontiguousarray(image)).save(stream, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def _check_image(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must have shape [H, W, 3] or [H, W, 4], got {image.shape}")


def image_grid(images: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Images laid out row by row, `columns` to a row, in cells `gap` white pixels apart.

    Every cell is as large as the largest image; image i goes top-left in the cell at row
    i // columns, column i % columns; the last row may be short (its empty cells stay white).

    Args:
        images: each [H_i, W_i, 3] or [H_i, W_i, 4] uint8; if any has alpha, so does the result
            (opaque white background, three-channel images pasted opaque).
        columns: cells per row (at least 1; fewer images than that give a single row of them).
    Returns:
        [rows * Hc + gap * (rows - 1), cols * Wc + gap * (cols - 1), 3 or 4] uint8, where
        Hc = max H_i, Wc = max W_i, cols = min(columns, len(images)), rows = ceil(n / cols).
    """
    if not images:
        raise ValueError("image_grid needs at least one image")
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    if gap < 0:
        raise ValueError(f"gap must be zero or more, got {gap}")
    for i, image in enumerate(images):
        _check_image(image, f"images[{i}]")
    columns = min(int(columns), len(images))
    rows = -(-len(images) // columns)
    channels = max(image.shape[2] for image in images)
    cell_height = max(image.shape[0] for image in images)
    cell_width = max(image.shape[1] for image in images)
    canvas = np.full(
        (rows * cell_height + gap * (rows - 1), columns * cell_width + gap * (columns - 1), channels),
        255,
        dtype=np.uint8,
    )
    for i, image in enumerate(images):
        top = (i // columns) * (cell_height + gap)
        left = (i % columns) * (cell_width + gap)
        h, w, c = image.shape
        canvas[top : top + h, left : left + w, :c] = image
    return canvas


def write_gif(frames: list[np.ndarray], path: str | os.PathLike, seconds_per_frame: float = 0.08) -> Path:
    """Write `frames` as a looping animated GIF at `path`, atomically; returns the path.

    Args:
        frames: each [H, W, 3] uint8, all the same shape. GIF stores at most 256 colours per
            frame, so frames with more are quantised (Pillow's adaptive palette). Pillow
            merges a frame equal to the one before into it (shown twice as long).
        seconds_per_frame: how long each frame shows (GIF keeps hundredths of a second).
    """
    if not frames:
        raise ValueError("write_gif needs at least one frame")
    for i, frame in enumerate(frames):
        _check_image(frame, f"frames[{i}]")
        if frame.shape[2] != 3:
            raise ValueError(f"frames[{i}] must be RGB [H, W, 3], got {frame.shape}")
        if frame.shape != frames[0].shape:
            raise ValueError(f"frames[{i}] has shape {frame.shape}, frames[0] has {frames[0].shape}")
    if not seconds_per_frame > 0:
        raise ValueError(f"seconds_per_frame must be positive, got {seconds_per_frame}")
    from PIL import Image

    from .files import write_atomic

    pictures = [Image.fromarray(np.ascontiguousarray(frame)) for frame in frames]
    milliseconds = int(round(1000.0 * seconds_per_frame))

    def write(temporary: str) -> None:
        pictures[0].save(
            temporary, format="GIF", save_all=True, append_images=pictures[1:], duration=milliseconds, loop=0,
        )

    return write_atomic(path, write)
