"""Depth images (a depth along each pixel's ray from one camera centre): surface normals estimated from
the image alone, the noise in it estimated from the image itself, and edge-aware smoothing.

Conventions: origin [3] (the camera's centre), directions [H, W, 3] (unit rays), depth [H, W] (the ray
parameter t of the first hit; inf where the ray hit nothing). Row and column are the image axes.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


GRAZING_COS = 0.05  # normals seen more edge-on than ~87° are left undefined
STEP_RATIO = 3.0  # neighbours this unevenly far: a depth jump on one side, use the other side only
MAD_TO_SIGMA = 1.482602218505602  # sigma of a Gaussian = this * its median absolute deviation
MEDIAN_RADIUS = 2  # the median a neighbour's depth is compared with: over the pixel's 5 x 5 window
RANGE_SIGMAS = 3.0  # a neighbour joins a pixel's depth fit within this many noise deviations of the median
MIN_TRIPLES = 32  # fewer runs of three hits along an axis than this: no noise estimate (0)


def _shifted(points: np.ndarray, axis: int, step: int) -> np.ndarray:
    """[H, W, 3] the point `step` pixels further along an image axis (NaN past the edge)."""
    out = np.full_like(points, np.nan)
    size = points.shape[axis]
    source = [slice(None)] * 2
    target = [slice(None)] * 2
    source[axis] = slice(max(step, 0), size + min(step, 0))
    target[axis] = slice(max(-step, 0), size + min(-step, 0))
    out[tuple(target)] = points[tuple(source)]
    return out


def _length(vectors: np.ndarray) -> np.ndarray:
    """[H, W, 1] the lengths, inf for NaN vectors."""
    return np.nan_to_num(np.linalg.norm(vectors, axis=-1, keepdims=True), nan=np.inf)


def _even(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """[H, W, 1] whether two finite step lengths are within `STEP_RATIO` of each other."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(first) & np.isfinite(second) & (
            np.maximum(first, second) <= STEP_RATIO * np.minimum(first, second))


def _one_sided_tangent(points: np.ndarray, axis: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(tangent [H, W, 3] pointing towards +axis, its first step's length [H, W, 1]) from the neighbours on
    one side (side +1 or -1). Steps a = side·(P1 - P0) and A = side·(P2 - P0) at arc lengths s = |a|
    and S = s + |P2 - P1| give the second-order S² a - s² A where the two steps are even, else a."""
    near = side * (_shifted(points, axis, side) - points)
    far = side * (_shifted(points, axis, 2 * side) - points)
    step = _length(near)
    arc = step + _length(far - near)
    with np.errstate(invalid="ignore"):
        second = arc ** 2 * near - step ** 2 * far
        even = _even(step, arc - step)
    return np.where(even, second, near), step


def _axis_tangent(points: np.ndarray, axis: int) -> np.ndarray:
    """[H, W, 3] a tangent along an image axis at each back-projected point (points [H, W, 3], NaN where
    nothing was hit), all pointing towards the next pixel; NaN where both neighbours are missing.

    With steps a = next - this and b = this - previous: |b|² a + |a|² b, the second-order derivative of
    a curve sampled unevenly (the central difference when |a| = |b|), where the two are even (within
    `STEP_RATIO`); else the shorter side's one-sided tangent (a depth jump or a silhouette on the
    other side)."""
    ahead, ahead_step = _one_sided_tangent(points, axis, 1)
    back, back_step = _one_sided_tangent(points, axis, -1)
    forward = _shifted(points, axis, 1) - points
    backward = points - _shifted(points, axis, -1)
    with np.errstate(invalid="ignore"):
        blended = back_step ** 2 * forward + ahead_step ** 2 * backward
    shorter = np.where(ahead_step <= back_step, ahead, back)
    return np.where(_even(ahead_step, back_step), blended, shorter)


def depth_normals(origin: np.ndarray, directions: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """normals [H, W, 3] of a depth image (origin [3], directions [H, W, 3], depth [H, W] with inf where
    nothing was hit): the cross product of the tangents along the columns and the rows (`_axis_tangent`)
    at each pixel's back-projected point, unit, turned towards the camera (n·d < 0). NaN where a tangent
    is missing or |n·d| < GRAZING_COS."""
    points = origin + np.where(np.isfinite(depth), depth, np.nan)[..., None] * directions
    normals = np.cross(_axis_tangent(points, 1), _axis_tangent(points, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
        facing = np.einsum("hwi,hwi->hw", normals, directions)
        normals = np.where((facing > 0)[..., None], -normals, normals)
        normals[~(np.abs(facing) >= GRAZING_COS)] = np.nan
    return normals


def depth_noise(depth: np.ndarray) -> float:
    """The standard deviation of the noise in a depth image (depth [H, W], inf where nothing was hit),
    estimated from its second differences d[i-1] - 2 d[i] + d[i+1] along both image axes over runs of
    three hits: for independent noise of deviation σ they have deviation σ·√6, and their median
    absolute value ignores the few runs across edges and silhouettes. 0 with fewer than `MIN_TRIPLES` runs.
    A smooth surface's own second differences add to the estimate (about 1e-4 in the normalised frame
    at the default camera)."""
    runs = []
    for axis in (0, 1):
        d = np.moveaxis(depth, axis, 0)
        with np.errstate(invalid="ignore"):  # inf - inf across misses: NaN, dropped
            second = d[:-2] - 2.0 * d[1:-1] + d[2:]
        runs.append(second[np.isfinite(second)])
    second = np.concatenate(runs)
    if len(second) < MIN_TRIPLES:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(second)) / math.sqrt(6.0))


def _neighbours(depth: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(values [n, H, W]: each pixel's neighbour at every offset of a (2 radius + 1)² window, NaN past
    the edge or where nothing was hit; offsets [n, 2]: (row, column) steps)."""
    height, width = depth.shape
    padded = np.full((height + 2 * radius, width + 2 * radius), np.nan)
    padded[radius:radius + height, radius:radius + width] = np.where(np.isfinite(depth), depth, np.nan)
    steps = np.arange(-radius, radius + 1)
    offsets = np.stack(np.meshgrid(steps, steps, indexing="ij"), axis=-1).reshape(-1, 2)
    values = np.stack([padded[radius + i:radius + i + height, radius + j:radius + j + width] for i, j in offsets])
    return values, offsets


def smooth_depth(depth: np.ndarray, noise: float, radius: int) -> np.ndarray:
    """depth [H, W] (inf where nothing was hit) with each hit's value replaced by an edge-aware local fit:
    over its (2 radius + 1)² window, the hits within `RANGE_SIGMAS` · noise of the median depth of its
    nearest 5 x 5 pixels (the surface the pixel belongs to, not one across a depth jump or behind a thin
    part), weighted by a Gaussian of their
    pixel distance (deviation radius / 2), fit depth = a + b·row + c·column, and a is the new value
    (exact on a depth linear in the pixel coordinates; the weighted mean where the fit is degenerate).
    Misses stay inf. radius 0 or noise 0: the depth unchanged."""
    if radius <= 0 or noise <= 0:
        return depth.copy()
    values, offsets = _neighbours(depth, radius)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows at misses
        median = np.nanmedian(values[np.abs(offsets).max(-1) <= MEDIAN_RADIUS], axis=0)
        keep = np.abs(values - median) <= RANGE_SIGMAS * noise
    spatial = np.exp(-(offsets ** 2).sum(-1) / (2.0 * (radius / 2.0) ** 2))
    weights = np.where(keep, spatial[:, None, None], 0.0)  # [n, H, W]
    values = np.where(keep, values, 0.0)
    basis = np.concatenate([np.ones((len(offsets), 1)), offsets.astype(np.float64)], axis=1)  # [n, 3]
    normal = np.einsum("nhw,ni,nj->hwij", weights, basis, basis)
    right = np.einsum("nhw,nhw,ni->hwi", weights, values, basis)
    total = normal[..., 0, 0]
    mean = np.divide(right[..., 0], total, out=np.full(depth.shape, np.nan), where=total > 0)
    fitted = mean.copy()
    solvable = np.abs(np.linalg.det(normal)) > 1e-9 * np.maximum(total, 1.0) ** 3
    if solvable.any():
        fitted[solvable] = np.linalg.solve(normal[solvable], right[solvable][..., None])[:, 0, 0]
    hits = np.isfinite(depth)
    return np.where(hits & np.isfinite(fitted), fitted, depth)
