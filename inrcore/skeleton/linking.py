"""Linking skeletal balls through the regular (weighted Delaunay) triangulation.

As in Coverage Axis (Dou et al. 2022), the selected balls, each dilated by `delta`, and the surface
samples, as balls of radius `delta`, are triangulated together; the edges and triangles whose
vertices are all skeletal make the skeleton's simplices (its connectivity).

The regular triangulation of points x_i with weights w_i is the projection of the lower convex hull
of the lifted points (x_i, ‖x_i‖² − w_i) in 4-D; it is computed with Qhull (`scipy.spatial.ConvexHull`).
A point whose lifted image lies above that lower hull (hidden by heavier neighbours: its power cell
is empty) is in no tetrahedron.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial import ConvexHull, QhullError


# A hull facet counts as lower when the last component of its unit outward normal is below −this;
# vertical facets (≈ 0, the convex hull's boundary in 3-D) are not tetrahedra.
_LOWER = 1e-10
# Relative size of the smallest singular value of the centred points below which they count as flat.
_FLAT = 1e-12
# Tetrahedra of volume below this (in the unit frame of `normalised_frame`) are flat: Qhull's
# triangulation of a non-simplicial facet (cospherical points) can add such zero-volume tetrahedra.
_FLAT_TETRAHEDRON = 1e-12


@dataclasses.dataclass(frozen=True, eq=False)
class SkeletonLinks:
    """The skeleton's connectivity over K skeletal points.

    edges [E, 2] and faces [F, 3]: int64 indices into the skeletal points, each simplex sorted,
    the rows unique and in lexicographic order. isolated [I]: skeletal points in no edge, sorted.
    """

    edges: np.ndarray
    faces: np.ndarray
    isolated: np.ndarray

    def to_dict(self) -> dict:
        """JSON-ready counts."""
        return {"n_edges": int(len(self.edges)), "n_faces": int(len(self.faces)),
                "n_isolated": int(len(self.isolated))}


def normalised_frame(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights moved to a centred unit frame: [N, 3], [N] -> [N, 3], [N].

    Centred at the mean and divided by the largest distance to it; the weights (squared lengths)
    are divided by its square, so power distances keep their order and the triangulation is the same.
    """
    centre = points.mean(axis=0)
    scale = float(np.linalg.norm(points - centre, axis=1).max())
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("regular triangulation: all points coincide")
    return (points - centre) / scale, weights / scale**2


def lifted_points(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The lift whose lower hull is the regular triangulation: [N, 3], [N] -> [N, 4] (x, ‖x‖² − w)."""
    return np.concatenate([points, (np.einsum("ij,ij->i", points, points) - weights)[:, None]], axis=1)


def regular_triangulation(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Tetrahedra of the regular triangulation of weighted points: [N, 3], [N] -> [T, 4] int64.

    The lower facets of the 4-D convex hull of `lifted_points` (outward normal's last component
    negative), after `normalised_frame`; each row's indices sorted, rows in lexicographic order.
    Hidden points (empty power cells) are in no tetrahedron. Flat (zero-volume) tetrahedra, which
    Qhull's triangulation of non-simplicial facets can add when points are co-(power-)spherical,
    are dropped; the others still triangulate such cells (one of their triangulations, Qhull's).
    With equal weights this is the Delaunay triangulation.

    Raises ValueError for fewer than 5 points or points that are all coplanar (no joggling: the
    skeleton's inputs, surface samples included, always span 3-D, and a joggled result would hide
    a bad input).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(weights) != len(points):
        raise ValueError(f"regular triangulation: {len(points)} points but {len(weights)} weights")
    if len(points) < 5:
        raise ValueError(f"regular triangulation: needs at least 5 points in 3-D, got {len(points)}")
    if not (np.isfinite(points).all() and np.isfinite(weights).all()):
        raise ValueError("regular triangulation: points and weights must be finite")
    points, weights = normalised_frame(points, weights)
    singular = np.linalg.svd(points, compute_uv=False)
    if singular[-1] <= _FLAT * singular[0]:
        raise ValueError("regular triangulation: the points are coplanar (or collinear); they must span 3-D")
    try:
        hull = ConvexHull(lifted_points(points, weights))
    except QhullError as error:
        raise ValueError(f"regular triangulation: Qhull failed on degenerate input ({error})") from error
    tetrahedra = hull.simplices[hull.equations[:, 3] < -_LOWER]
    return unique_simplices(tetrahedra[np.abs(tetrahedron_volumes(points, tetrahedra)) > _FLAT_TETRAHEDRON])


def tetrahedron_volumes(points: np.ndarray, tetrahedra: np.ndarray) -> np.ndarray:
    """Signed volumes: points [N, 3], tetrahedra [T, 4] -> [T], det(p1 − p0, p2 − p0, p3 − p0) / 6."""
    corners = points[np.asarray(tetrahedra, dtype=np.int64).reshape(-1, 4)]
    return np.linalg.det(corners[:, 1:] - corners[:, :1]) / 6.0


def unique_simplices(simplices: np.ndarray) -> np.ndarray:
    """Each simplex's indices sorted, duplicates removed, rows in lexicographic order: [M, k] -> [M', k]."""
    simplices = np.sort(np.asarray(simplices, dtype=np.int64), axis=1)
    if not len(simplices):
        return simplices.reshape(0, simplices.shape[1])
    return np.unique(simplices, axis=0)


def simplex_faces(tetrahedra: np.ndarray, size: int) -> np.ndarray:
    """All faces with `size` vertices (2: edges, 3: triangles) of tetrahedra [T, 4] -> [T·C(4, size), size]."""
    choices = {2: [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)],
               3: [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]}[size]
    tetrahedra = np.asarray(tetrahedra, dtype=np.int64).reshape(-1, 4)
    return tetrahedra[:, np.asarray(choices)].reshape(-1, size)


def skeleton_simplices(centres: np.ndarray, radii: np.ndarray, surface: np.ndarray, delta: float) -> SkeletonLinks:
    """The skeleton's edges and triangles: centres [K, 3], radii [K], surface [S, 3], delta -> `SkeletonLinks`.

    Regular triangulation of [centres; surface] with weights (r + delta)² for the centres and delta²
    for the surface samples; the edges and triangles of its tetrahedra whose vertices are all
    skeletal (indices < K) are kept. Works for any K ≥ 1 as long as K + S ≥ 5 and the points span
    3-D (else `regular_triangulation`'s ValueError); K = 1 gives no edges.
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    surface = np.asarray(surface, dtype=np.float64).reshape(-1, 3)
    if len(radii) != len(centres):
        raise ValueError(f"{len(centres)} centres but {len(radii)} radii")
    k = len(centres)
    if k == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SkeletonLinks(edges=empty.reshape(0, 2), faces=empty.reshape(0, 3), isolated=empty)
    weights = np.concatenate([(radii + delta) ** 2, np.full(len(surface), float(delta) ** 2)])
    tetrahedra = regular_triangulation(np.concatenate([centres, surface]), weights)
    edges = simplex_faces(tetrahedra, 2)
    faces = simplex_faces(tetrahedra, 3)
    edges = unique_simplices(edges[(edges < k).all(axis=1)])
    faces = unique_simplices(faces[(faces < k).all(axis=1)])
    isolated = np.setdiff1d(np.arange(k), edges.reshape(-1)).astype(np.int64)
    return SkeletonLinks(edges=edges, faces=faces, isolated=isolated)
