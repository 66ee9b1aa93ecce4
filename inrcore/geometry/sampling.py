"""Samples for fitting and measuring neural SDFs: oriented surface points and signed distances.

Signed distances to a triangle mesh come from libigl: the exact unsigned distance (AABB tree,
`igl.signed_distance` with `SIGNED_DISTANCE_TYPE_UNSIGNED`) and the sign from the generalised
winding number (`igl.fast_winding_number`, Barill et al. 2018), which stays right on meshes
with holes, cracks or self-intersections where a pseudonormal sign fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import igl
import numpy as np
import trimesh

from inrcore.geometry.settings import SamplingConfig


def sample_surface(mesh: trimesh.Trimesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted points on a triangle mesh with their face normals.

    Args:
        mesh: a triangle mesh with at least one face of non-zero area.
        n: number of points.
        rng: the random generator (the only source of randomness).
    Returns:
        points [n, 3] float64 and unit normals [n, 3] float64.
    """
    triangles = mesh.vertices[mesh.faces]  # [F, 3, 3]
    cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    total = double_area.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("mesh has no area to sample")
    face = rng.choice(len(triangles), size=n, p=double_area / total)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    tri = triangles[face]
    points = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])
    area = np.maximum(double_area[face], 1e-300)[:, None]
    normals = cross[face] / area
    return points, normals


def signed_distance(
    mesh: trimesh.Trimesh, queries: np.ndarray, batch_size: int = 1_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances from points to a triangle mesh, negative inside, and the closest points.

    The magnitude is the exact Euclidean distance to the nearest triangle (libigl AABB tree via
    `igl.signed_distance(..., SIGNED_DISTANCE_TYPE_UNSIGNED)`). The sign is that of
    1 - 2 |w|, with w the generalised winding number of the point from
    `igl.fast_winding_number`: a point is inside when |w| > 1/2. The winding number is about 1
    inside and 0 outside a closed outward-oriented mesh, degrades gracefully across holes, and
    taking |w| makes the sign independent of the mesh's orientation (an inward-facing mesh
    has w near -1 inside).

    libigl's own winding-number sign types are not used: in libigl 2.6.3
    `SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER` returns distances that disagree with its closest
    points by up to a few 1e-3, and `SIGNED_DISTANCE_TYPE_WINDING_NUMBER` returns wrong
    magnitudes on open meshes (0.095 instead of 0.304 inside a sphere with a hole).

    Args:
        mesh: a triangle mesh (need not be watertight or consistently oriented).
        queries: [M, 3] query points.
        batch_size: points per libigl call (bounds the temporary memory).
    Returns:
        sdf [M] float64 and closest [M, 3] float64, the nearest point on the mesh.
    """
    sdf, closest, _ = _signed_distance_with_faces(mesh, queries, batch_size)
    return sdf, closest


@dataclass(frozen=True, eq=False)
class ShapeSamples:
    """Training samples of one shape in normalised coordinates.

    Rows [0, n_surface) are surface points: sdf 0 and the unit normal of the face they lie on
    (or of the cloud point they are). The remaining rows are off-surface points
    (near-surface groups in the order of `counts["near"]`, then uniform points): for meshes
    their normal is the unit gradient of the exact SDF, sign(sdf) (p - closest) / |p - closest|;
    for point clouds both their sdf and normal are NaN (unknown).

    Attributes:
        points: [N, 3] float32.
        normals: [N, 3] float32, unit length (NaN off the surface of a point cloud).
        sdf: [N] float32, negative inside (NaN off the surface of a point cloud).
        n_surface: number of leading surface rows.
        counts: {"surface": int, "near": [int per sigma], "uniform": int}; they sum to N.
    """

    points: np.ndarray
    normals: np.ndarray
    sdf: np.ndarray
    n_surface: int
    counts: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.points)
        if self.points.shape != (n, 3) or self.normals.shape != (n, 3) or self.sdf.shape != (n,):
            raise ValueError(
                f"inconsistent shapes: points {self.points.shape}, normals {self.normals.shape}, "
                f"sdf {self.sdf.shape}"
            )
        if not 0 <= self.n_surface <= n:
            raise ValueError(f"n_surface {self.n_surface} is outside 0..{n}")


def near_counts(n_near: int, n_groups: int) -> list[int]:
    """Split n_near points evenly over n_groups sigmas; the first n_near % n_groups get one more."""
    if n_groups == 0:
        return []
    base, extra = divmod(n_near, n_groups)
    return [base + (1 if i < extra else 0) for i in range(n_groups)]


def sample_sdf(mesh: trimesh.Trimesh, config: SamplingConfig) -> ShapeSamples:
    """Surface, near-surface and uniform samples of a normalised mesh with exact signed distances.

    Draws, in this order and all from `np.random.default_rng(config.seed)`:
      - config.n_surface area-weighted surface points with their face normals (sdf 0);
      - for each sigma in config.near_sigmas, its share of config.n_near (`near_counts`) of
        fresh area-weighted surface points plus isotropic Gaussian noise N(0, sigma^2 I);
      - config.n_uniform points uniform in [-1, 1]^3.
    Off-surface distances and normals come from `signed_distance`, evaluated at the float32
    points that are stored, so `sdf` matches `points` exactly as saved.

    Args:
        mesh: a triangle mesh already normalised into [-1, 1]^3 (see `normalise_mesh`).
        config: sample counts, noise scales and seed.
    Returns:
        ShapeSamples with N = n_surface + n_near + n_uniform rows.
    """
    rng = np.random.default_rng(config.seed)
    surface_points, surface_normals = sample_surface(mesh, config.n_surface, rng)
    off_surface, counts = offsurface_points(lambda count: sample_surface(mesh, count, rng)[0], config, rng)
    off_sdf, off_normals = _sdf_and_gradient(mesh, off_surface.astype(np.float64))
    return _samples_of(surface_points, surface_normals, off_surface, off_normals, off_sdf, counts)


def sample_point_cloud(points: np.ndarray, normals: np.ndarray, config: SamplingConfig) -> ShapeSamples:
    """Surface, near-surface and uniform samples of a normalised oriented point cloud.

    The same layout and draws as `sample_sdf`, from `np.random.default_rng(config.seed)`:
      - config.n_surface points of the cloud with their normals (sdf 0): drawn without
        replacement when the cloud has that many points, with replacement otherwise;
      - for each sigma in config.near_sigmas, its share of config.n_near of cloud points
        (drawn with replacement) plus isotropic Gaussian noise N(0, sigma^2 I);
      - config.n_uniform points uniform in [-1, 1]^3.
    A cloud does not say how far an off-surface point is from the surface, so every
    off-surface row has sdf NaN and normal (NaN, NaN, NaN): unknown, never to be fitted to.

    Args:
        points [P, 3]: the cloud, already normalised into [-1, 1]^3.
        normals [P, 3]: unit normals, consistently oriented (outward).
        config: sample counts, noise scales and seed.
    Returns:
        ShapeSamples with N = n_surface + n_near + n_uniform rows.
    """
    points = np.asarray(points, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0 or normals.shape != points.shape:
        raise ValueError(f"expected points [P, 3] with P > 0 and normals of the same shape, "
                         f"got {points.shape} and {normals.shape}")
    rng = np.random.default_rng(config.seed)
    pick = rng.choice(len(points), size=config.n_surface, replace=config.n_surface > len(points))
    off_surface, counts = offsurface_points(lambda count: points[rng.integers(len(points), size=count)],
                                            config, rng)
    unknown_sdf = np.full(len(off_surface), np.nan)
    unknown_normals = np.full((len(off_surface), 3), np.nan)
    return _samples_of(points[pick], normals[pick], off_surface, unknown_normals, unknown_sdf, counts)


def offsurface_points(
    draw_surface: Callable[[int], np.ndarray], config: SamplingConfig, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """The off-surface points of `sample_sdf` and `sample_point_cloud`, and the sample counts.

    Args:
        draw_surface: count -> [count, 3] fresh surface points (drawn with `rng`).
        config: n_near, near_sigmas, n_uniform and n_surface.
        rng: the random generator, used after `draw_surface` for each sigma's noise.
    Returns:
        points [n_near + n_uniform, 3] float32 (near groups in sigma order, then uniform in
        [-1, 1]^3) and counts {"surface": n_surface, "near": [int per sigma], "uniform": n_uniform}.
    """
    per_sigma = near_counts(config.n_near, len(config.near_sigmas))
    near = []
    for sigma, count in zip(config.near_sigmas, per_sigma):
        base = draw_surface(count)
        near.append(base + rng.normal(0.0, sigma, size=(count, 3)))
    uniform = rng.uniform(-1.0, 1.0, size=(config.n_uniform, 3))
    counts = {"surface": config.n_surface, "near": per_sigma, "uniform": config.n_uniform}
    return np.concatenate(near + [uniform]).astype(np.float32), counts


def known_distances(offsurface_sdf: np.ndarray) -> Optional[np.ndarray]:
    """The stored off-surface distances [V] for fitting, or None when they are unknown.

    Samples of point clouds have sdf NaN off the surface (`sample_point_cloud`): all NaN
    gives None (fit without distances). Samples of meshes are finite and come back as is.
    A mixture cannot come from either sampler and raises ValueError.
    """
    offsurface_sdf = np.asarray(offsurface_sdf)
    unknown = np.isnan(offsurface_sdf)
    if len(offsurface_sdf) and unknown.all():
        return None
    if unknown.any() or not np.isfinite(offsurface_sdf).all():
        raise ValueError(f"{int((~np.isfinite(offsurface_sdf)).sum())} of {len(offsurface_sdf)} off-surface "
                         "distances are NaN or infinite; expected all known (mesh) or all NaN (point cloud)")
    return offsurface_sdf


def _samples_of(surface_points, surface_normals, off_points, off_normals, off_sdf, counts: dict) -> ShapeSamples:
    """Stack surface rows (sdf 0) over off-surface rows as float32 `ShapeSamples`."""
    n_surface = len(surface_points)
    points = np.concatenate([np.asarray(surface_points).astype(np.float32), off_points.astype(np.float32)])
    normals = np.concatenate([surface_normals, off_normals]).astype(np.float32)
    sdf = np.concatenate([np.zeros(n_surface), off_sdf]).astype(np.float32)
    return ShapeSamples(points=points, normals=normals, sdf=sdf, n_surface=n_surface, counts=counts)


def _signed_distance_with_faces(
    mesh: trimesh.Trimesh, queries: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`signed_distance` plus the index of each closest face: sdf [M], closest [M, 3], face [M]."""
    queries = np.ascontiguousarray(queries, dtype=np.float64)
    if queries.ndim != 2 or queries.shape[1] != 3:
        raise ValueError(f"expected queries of shape [M, 3], got {queries.shape}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    sdf = np.empty(len(queries))
    closest = np.empty((len(queries), 3))
    face = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        stop = start + len(batch)
        distance, nearest_face, nearest_point, _ = igl.signed_distance(
            batch, vertices, faces, igl.SignedDistanceType.SIGNED_DISTANCE_TYPE_UNSIGNED
        )
        winding = igl.fast_winding_number(vertices, faces, batch)
        sdf[start:stop] = np.where(np.abs(winding) > 0.5, -distance, distance)
        closest[start:stop] = nearest_point
        face[start:stop] = nearest_face
    return sdf, closest, face


def _sdf_and_gradient(mesh: trimesh.Trimesh, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance [M] and unit SDF gradient [M, 3] at off-surface points [M, 3].

    The gradient is sign(sdf) (p - closest) / |p - closest|; where p is within 1e-12 of the
    mesh the direction is undefined and the closest face's unit normal is used instead.
    """
    sdf, closest, face = _signed_distance_with_faces(mesh, queries, batch_size=1_000_000)
    offset = queries - closest
    length = np.linalg.norm(offset, axis=1)
    on_surface = length <= 1e-12
    sign = np.where(sdf < 0, -1.0, 1.0)
    gradient = sign[:, None] * offset / np.where(on_surface, 1.0, length)[:, None]
    if on_surface.any():
        gradient[on_surface] = _unit_face_normals(mesh, face[on_surface])
    return sdf, gradient


def _unit_face_normals(mesh: trimesh.Trimesh, face: np.ndarray) -> np.ndarray:
    """Unit normals [K, 3] of the faces with indices [K] (right-hand rule; +z for degenerate faces)."""
    triangles = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)[face]]
    cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    length = np.linalg.norm(cross, axis=1, keepdims=True)
    fallback = np.broadcast_to([0.0, 0.0, 1.0], cross.shape)
    return np.where(length > 0, cross / np.where(length > 0, length, 1.0), fallback)


def neighbour_scales(points: np.ndarray, k: int = 50) -> np.ndarray:
    """Distance from each point to its k-th nearest other point: [N, 3] -> [N] (IGR's local sigma)."""
    from scipy.spatial import cKDTree

    if len(points) <= k:
        raise ValueError(f"need more than k = {k} points for neighbour scales, got {len(points)}")
    distances, _ = cKDTree(points).query(points, k=k + 1)
    return distances[:, k]


def sample_eikonal_points(points: np.ndarray, scales: np.ndarray, n_near: int, n_uniform: int,
                          rng: np.random.Generator, bound: float = 1.0) -> np.ndarray:
    """IGR's eikonal sample distribution: Gaussians around random surface points, each with
    its own standard deviation `scales[i]`, plus points uniform in [-bound, bound]^3.

    Args:
        points [N, 3], scales [N]: surface points and their local scales.
    Returns:
        [n_near + n_uniform, 3] float64.
    """
    pick = rng.integers(len(points), size=n_near)
    near = points[pick] + rng.normal(size=(n_near, 3)) * scales[pick, None]
    uniform = rng.uniform(-bound, bound, size=(n_uniform, 3))
    return np.concatenate([near, uniform])
