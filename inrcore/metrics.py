"""Surface metrics between a reconstructed mesh and its reference.

Both surfaces are compared through area-weighted point samples (`sampling.sample_surface`)
and nearest-neighbour queries (scipy cKDTree). Every distance is reported in
"unit-cube normalisation": divided by the longest side of the reference's axis-aligned
bounding box, so numbers are comparable across shapes of any size.

Conventions (A is the reconstruction, B the reference):
    d(a, B)            distance from a point of A to its nearest sample of B
    chamfer_l1         0.5 * (mean_a d(a, B) + mean_b d(b, A))   (unsquared distances)
    hausdorff          max(max_a d(a, B), max_b d(b, A))
    precision          fraction of A with d(a, B) <= tau
    recall             fraction of B with d(b, A) <= tau
    fscore             2 P R / (P + R), 0 when P = R = 0
    normal_consistency 0.5 * (mean_a |n_a . n_nearest(B)| + mean_b |n_b . n_nearest(A)|)
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from .sampling import sample_surface

METRIC_NAMES = ("chamfer_l1", "fscore", "precision", "recall", "normal_consistency", "hausdorff")


def compare_meshes(
    reconstruction: trimesh.Trimesh,
    reference: trimesh.Trimesh,
    n_points: int = 100_000,
    fscore_ratio: float = 0.01,
    seed: int = 0,
) -> dict:
    """Surface metrics of `reconstruction` against `reference` (see the module docstring).

    Args:
        reconstruction: the mesh being judged (A).
        reference: the ground-truth mesh (B); its bounding box sets the units.
        n_points: area-weighted samples drawn on each mesh.
        fscore_ratio: the F-score threshold as a fraction of the reference bbox diagonal.
        seed: seeds two independent sample streams, one per mesh.
    Returns:
        {"chamfer_l1", "fscore", "precision", "recall", "normal_consistency", "hausdorff"}
        as plain floats; distances are divided by the reference bbox's longest side.
    Raises:
        ValueError: a mesh has no faces or no area, or n_points / fscore_ratio is not positive.
    """
    _check_sampling(n_points, fscore_ratio)
    _check_has_area(reconstruction, "reconstruction")
    _check_has_area(reference, "reference")

    scale, tau = units_of(np.asarray(reference.bounds[1] - reference.bounds[0], dtype=np.float64), fscore_ratio)

    rng_reconstruction, rng_reference = np.random.default_rng(seed).spawn(2)
    points_a, normals_a = sample_surface(reconstruction, n_points, rng_reconstruction)
    points_b, normals_b = sample_surface(reference, n_points, rng_reference)
    return compare_point_sets(points_a, normals_a, points_b, normals_b, scale=scale, tau=tau)


def units_of(extents: np.ndarray, fscore_ratio: float) -> tuple[float, float]:
    """The reference's unit and F-score threshold in that unit, from its bbox extents [3]:
    (longest side, fscore_ratio x diagonal / longest side)."""
    scale = float(extents.max())
    return scale, fscore_ratio * float(np.linalg.norm(extents)) / scale


def _check_sampling(n_points: int, fscore_ratio: float) -> None:
    if n_points < 1:
        raise ValueError(f"n_points must be at least 1, got {n_points}")
    if not fscore_ratio > 0:
        raise ValueError(f"fscore_ratio must be positive, got {fscore_ratio}")


def compare_mesh_to_points(
    reconstruction: trimesh.Trimesh,
    points: np.ndarray,
    normals: np.ndarray,
    n_points: int = 100_000,
    fscore_ratio: float = 0.01,
    seed: int = 0,
) -> dict:
    """Surface metrics of `reconstruction` against an oriented point cloud (the reference B).

    The same keys and conventions as `compare_meshes`, with the cloud's own points standing
    for the reference's surface samples: all of them, or `n_points` drawn without
    replacement when the cloud has more. Distances are divided by the longest side of the
    cloud's bounding box; normal consistency compares with the cloud's normals (unsigned).

    Args:
        reconstruction: the mesh being judged (A).
        points [P, 3], normals [P, 3]: the reference cloud and its unit normals.
        n_points: samples drawn on the reconstruction, and at most as many cloud points.
        fscore_ratio: the F-score threshold as a fraction of the cloud's bbox diagonal.
        seed: seeds two independent streams, one for the mesh samples, one for the cloud subset.
    Returns:
        {"chamfer_l1", "fscore", "precision", "recall", "normal_consistency", "hausdorff"}.
    Raises:
        ValueError: the mesh has no area, the cloud is empty or flat in every direction,
            or n_points / fscore_ratio is not positive.
    """
    _check_sampling(n_points, fscore_ratio)
    _check_has_area(reconstruction, "reconstruction")
    points_b, normals_b = _check_oriented_points(points, normals, "b")

    extents = points_b.max(axis=0) - points_b.min(axis=0)  # [3]
    if not extents.max() > 0:
        raise ValueError("the reference point cloud has zero extent")
    scale, tau = units_of(extents, fscore_ratio)

    rng_reconstruction, rng_reference = np.random.default_rng(seed).spawn(2)
    points_a, normals_a = sample_surface(reconstruction, n_points, rng_reconstruction)
    if len(points_b) > n_points:
        keep = rng_reference.choice(len(points_b), size=n_points, replace=False)
        points_b, normals_b = points_b[keep], normals_b[keep]
    return compare_point_sets(points_a, normals_a, points_b, normals_b, scale=scale, tau=tau)


def compare_point_sets(
    points_a: np.ndarray,
    normals_a: np.ndarray,
    points_b: np.ndarray,
    normals_b: np.ndarray,
    scale: float,
    tau: float,
) -> dict:
    """Metrics between oriented point set A (reconstruction) and B (reference).

    Args:
        points_a: [N, 3] points of A; normals_a: [N, 3] unit normals of A.
        points_b: [M, 3] points of B; normals_b: [M, 3] unit normals of B.
        scale: every distance is divided by this length (> 0) before it is reported.
        tau: the F-score threshold, in the divided units (a point is "within" when
            distance / scale <= tau).
    Returns:
        the dict described in the module docstring, plain floats.
    """
    points_a, normals_a = _check_oriented_points(points_a, normals_a, "a")
    points_b, normals_b = _check_oriented_points(points_b, normals_b, "b")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite length, got {scale}")
    if not (np.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a non-negative finite distance, got {tau}")

    dist_a_to_b, nearest_b = nearest_neighbours(points_a, points_b)  # [N], [N]
    dist_b_to_a, nearest_a = nearest_neighbours(points_b, points_a)  # [M], [M]
    dist_a_to_b = dist_a_to_b / scale
    dist_b_to_a = dist_b_to_a / scale

    precision = float(np.mean(dist_a_to_b <= tau))
    recall = float(np.mean(dist_b_to_a <= tau))
    cos_a = np.abs(np.sum(normals_a * normals_b[nearest_b], axis=1))  # [N]
    cos_b = np.abs(np.sum(normals_b * normals_a[nearest_a], axis=1))  # [M]
    return {
        "chamfer_l1": float(0.5 * (dist_a_to_b.mean() + dist_b_to_a.mean())),
        "fscore": fscore_of(precision, recall),
        "precision": precision,
        "recall": recall,
        "normal_consistency": float(0.5 * (cos_a.mean() + cos_b.mean())),
        "hausdorff": float(max(dist_a_to_b.max(), dist_b_to_a.max())),
    }


def nearest_neighbours(queries: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the Euclidean distance to its nearest point and that point's index.

    Args:
        queries: [N, 3]; points: [M, 3].
    Returns:
        distances [N] float64 and indices [N] int into `points`.

    The tree uses sliding-midpoint splits and uncompacted cells: on surface samples far from
    the other surface (a reconstruction blob wrapped around the shape, where hundreds of
    candidates are nearly equidistant) scipy's default median/compacted tree was measured
    ~10x slower (13 s against 1.3 s for 2 x 100k points), and no slower on close surfaces.
    """
    tree = cKDTree(points, leafsize=32, balanced_tree=False, compact_nodes=False)
    distances, indices = tree.query(queries, k=1, workers=-1)
    return np.asarray(distances, dtype=np.float64), np.asarray(indices)


def fscore_of(precision: float, recall: float) -> float:
    """The harmonic mean 2PR / (P + R) of precision and recall; 0 when both are 0."""
    total = precision + recall
    return float(2.0 * precision * recall / total) if total > 0 else 0.0


def _check_has_area(mesh: trimesh.Trimesh, role: str) -> None:
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or len(faces) == 0:
        raise ValueError(f"{role} mesh has no faces; cannot measure its surface")
    area = float(mesh.area)
    if not (np.isfinite(area) and area > 0):
        raise ValueError(f"{role} mesh has {len(faces)} faces but no surface area (got {area})")


def _check_oriented_points(points, normals, name: str) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"points_{name} must be a non-empty [N, 3] array, got shape {points.shape}")
    if normals.shape != points.shape:
        raise ValueError(
            f"normals_{name} must have the shape of points_{name} {points.shape}, got {normals.shape}"
        )
    if not np.isfinite(points).all():
        raise ValueError(f"points_{name} contains NaN or infinite coordinates")
    return points, normals
