"""Pictures as arrays: side-by-side panels, grids of images, PNG and GIF files (written atomically).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np


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

    from inrcore.files import write_atomic

    pictures = [Image.fromarray(np.ascontiguousarray(frame)) for frame in frames]
    milliseconds = int(round(1000.0 * seconds_per_frame))

    def write(temporary: str) -> None:
        pictures[0].save(
            temporary, format="GIF", save_all=True, append_images=pictures[1:], duration=milliseconds, loop=0,
        )

    return write_atomic(path, write)
