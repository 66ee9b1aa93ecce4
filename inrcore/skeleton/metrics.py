"""How good a skeleton is: its topology, its distance to a known medial axis, and how well its
union of balls reproduces the shape.

Lengths are reported in units of `diagonal` (the shape's bounding-box diagonal, passed by the
caller), so figures compare across shapes of any size. Figures that do not exist for an empty
skeleton (a mean over no points) are None.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import cdist

from inrcore.geometry.metrics import distances_to_surface, nearest_neighbours
from inrcore.geometry.sampling import sample_surface


def skeleton_topology(num_points: int, edges, faces) -> dict:
    """Counts and Betti numbers of the simplicial complex of the points, edges and triangles.

    The complex holds every point, every distinct edge (those given and the triangles' sides;
    an edge i-i is left out) and every distinct triangle (with three different corners).
    b0 = `components`: connected pieces, an isolated point being one. b1 = `betti1`: independent
    loops that no triangles fill, E - rank d1 - rank d2, with rank d1 = V - b0 and rank d2 the
    rank over GF(2) of the triangles' boundaries (exact, by elimination on bit sets; it differs
    from the rank over the rationals only for complexes with torsion, such as a triangulated
    projective plane).

    Args:
        num_points: V; edges [E, 2], faces [F, 3]: indices in 0 .. V-1.
    Returns:
        {"balls": V, "edges": distinct edges, "faces": distinct triangles, "components": b0,
         "betti1": b1, "euler": V - edges + faces}.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    for name, indices in (("edges", edges), ("faces", faces)):
        if indices.size and (indices.min() < 0 or indices.max() >= num_points):
            raise ValueError(f"{name} index a point outside 0..{num_points - 1}")
    faces = np.unique(np.sort(faces, axis=1), axis=0)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])]
    sides = np.concatenate([edges, faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [0, 2]]])
    sides = np.unique(np.sort(sides, axis=1), axis=0)
    sides = sides[sides[:, 0] != sides[:, 1]]  # [E', 2], sorted rows in lexicographic order

    graph = coo_matrix((np.ones(len(sides)), (sides[:, 0], sides[:, 1])), shape=(num_points, num_points))
    components = int(connected_components(graph, directed=False)[0]) if num_points else 0
    rank_d1 = num_points - components
    rank_d2 = _rank_gf2(_face_side_indices(faces, sides))
    return {
        "balls": int(num_points),
        "edges": int(len(sides)),
        "faces": int(len(faces)),
        "components": components,
        "betti1": int(len(sides) - rank_d1 - rank_d2),
        "euler": int(num_points - len(sides) + len(faces)),
    }


def _face_side_indices(faces: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """For each triangle (sorted corners a < b < c) the indices [F, 3] of its sides ab, bc, ac in
    `sides` [E', 2] (sorted rows, sorted lexicographically)."""
    if len(faces) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    width = int(sides.max()) + 1
    keys = sides[:, 0] * width + sides[:, 1]  # increasing, as the rows are sorted
    wanted = np.stack([faces[:, 0] * width + faces[:, 1], faces[:, 1] * width + faces[:, 2],
                       faces[:, 0] * width + faces[:, 2]], axis=1)
    return np.searchsorted(keys, wanted)


def _rank_gf2(rows: np.ndarray) -> int:
    """The rank over GF(2) of the 0/1 matrix whose row i has ones in the columns rows[i] [F, k]:
    Gaussian elimination with each row a Python integer used as a bit set."""
    pivots: dict[int, int] = {}
    for columns in rows.tolist():
        row = 0
        for column in columns:
            row ^= 1 << column
        while row:
            top = row.bit_length() - 1
            if top not in pivots:
                pivots[top] = row
                break
            row ^= pivots[top]
    return len(pivots)


def medial_accuracy(
    points,
    radii,
    distance_to_axis: Callable[[np.ndarray], np.ndarray],
    axis_samples,
    true_radius: Optional[Callable[[np.ndarray], np.ndarray]],
    diagonal: float,
) -> dict:
    """A skeleton against a known medial axis, in units of `diagonal`.

    Args:
        points [K, 3], radii [K]: the skeleton's balls.
        distance_to_axis: points [N, 3] -> their distances [N] to the true medial axis.
        axis_samples [M, 3]: dense points on the true axis.
        true_radius: points [N, 3] -> the true inscribed radius [N] there (None: not known).
        diagonal: the length unit.
    Returns:
        {"axis_mean", "axis_max": distances of the skeletal points to the axis,
         "completeness_mean", "completeness_max": of the axis samples to the nearest skeletal
         point, "radius_error_mean": mean |r_k - true_radius(p_k)| (None without true_radius)}.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    axis_samples = np.asarray(axis_samples, dtype=np.float64).reshape(-1, 3)
    figures = dict.fromkeys(("axis_mean", "axis_max", "completeness_mean", "completeness_max", "radius_error_mean"))
    if len(points) == 0:
        return figures
    to_axis = np.asarray(distance_to_axis(points), dtype=np.float64) / diagonal
    figures.update(axis_mean=float(to_axis.mean()), axis_max=float(to_axis.max()))
    if len(axis_samples):
        covered, _ = nearest_neighbours(axis_samples, points)
        figures.update(completeness_mean=float(covered.mean() / diagonal), completeness_max=float(covered.max() / diagonal))
    if true_radius is not None:
        error = np.abs(radii - np.asarray(true_radius(points), dtype=np.float64))
        figures["radius_error_mean"] = float(error.mean() / diagonal)
    return figures


def ball_union_fidelity(points, radii, surface_mesh: trimesh.Trimesh, diagonal: float,
                        n_samples: int = 20000, seed: int = 0, coverage_tolerance: float = 1e-3) -> dict:
    """How closely the boundary of the union of balls follows the surface, in units of `diagonal`.

    Samples: `n_samples` points uniform on the union's boundary (area-weighted points on the
    spheres, kept where no other ball strictly holds them) and as many on the surface. A
    boundary sample's distance to the surface is exact (to the nearest triangle); a surface
    point's distance to the union's boundary is the least of |(|x - c_i| - r_i)| over the eight
    spheres nearest it whose point nearest x is on the boundary (exact whenever the nearest
    boundary point is not on a crease where spheres meet) and the distance to the nearest
    boundary sample.

    Returns:
        {"hausdorff": the larger of both directions' largest distances, "chamfer": the mean of
         both directions' mean distances, "coverage": the share of a second surface sample
         inside some ball, up to `coverage_tolerance` x diagonal}; None each without balls.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    keep = radii > 0
    centres, radii = points[keep], radii[keep]
    if len(centres) == 0:
        return dict.fromkeys(("hausdorff", "chamfer", "coverage"))
    rng = np.random.default_rng(seed)
    boundary = sample_union_boundary(centres, radii, n_samples, rng)
    surface, _ = sample_surface(surface_mesh, n_samples, rng)
    to_surface, _ = distances_to_surface(boundary, np.zeros_like(boundary), surface_mesh)
    to_union = distances_to_union_boundary(surface, centres, radii, boundary)
    fresh, _ = sample_surface(surface_mesh, n_samples, rng)
    inside = _union_value(fresh, centres, radii) <= coverage_tolerance * diagonal
    return {
        "hausdorff": float(max(to_surface.max(), to_union.max()) / diagonal),
        "chamfer": float(0.5 * (to_surface.mean() + to_union.mean()) / diagonal),
        "coverage": float(inside.mean()),
    }


def sample_union_boundary(centres: np.ndarray, radii: np.ndarray, n: int, rng: np.random.Generator,
                          rounds: int = 50) -> np.ndarray:
    """About n points [n', 3] uniform on the boundary of the union of balls (centres [K, 3],
    radii [K] > 0): area-weighted points on the spheres, those strictly inside another ball
    thrown away, drawn in rounds until n are kept (or `rounds` run out)."""
    kept, count = [], 0
    weights = radii**2 / np.sum(radii**2)
    for _ in range(rounds):
        ball = rng.choice(len(radii), size=n, p=weights)
        direction = rng.normal(size=(n, 3))
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-300)
        spots = centres[ball] + radii[ball, None] * direction
        spots = spots[~_inside_another(spots, ball, centres, radii)]
        kept.append(spots)
        count += len(spots)
        if count >= n:
            break
    return np.concatenate(kept)[:n]


def distances_to_union_boundary(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                                boundary: np.ndarray, candidates: int = 8) -> np.ndarray:
    """Distances [N] from queries [N, 3] to the boundary of the union of balls, from above: the
    least |(|x - c_i| - r_i)| over the `candidates` spheres nearest x whose point nearest x lies on
    the boundary (in no other ball), and the distance to the nearest of the `boundary` samples."""
    sampled, _ = nearest_neighbours(queries, boundary)
    k = min(candidates, len(radii))
    best = sampled.copy()
    for start in range(0, len(queries), 4096):
        x = queries[start:start + 4096]
        gap = cdist(x, centres) - radii[None]  # [n, K]
        nearest = np.argpartition(np.abs(gap), k - 1, axis=1)[:, :k] if k < len(radii) else \
            np.broadcast_to(np.arange(len(radii)), gap.shape)
        for column in range(k):
            ball = nearest[:, column]
            offset = x - centres[ball]
            length = np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-300)
            foot = centres[ball] + radii[ball, None] * offset / length
            exposed = ~_inside_another(foot, ball, centres, radii)
            reach = np.where(exposed, np.abs(gap[np.arange(len(x)), ball]), np.inf)
            best[start:start + 4096] = np.minimum(best[start:start + 4096], reach)
    return best


def _union_value(x: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """min_i (|x - c_i| - r_i) [N]: negative inside the union, the distance to it outside."""
    return np.concatenate([(cdist(x[s:s + 4096], centres) - radii).min(axis=1)
                           for s in range(0, len(x), 4096)]) if len(x) else np.zeros(0)


def _inside_another(spots: np.ndarray, own: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether each point [S, 3] on the sphere of ball own[s] is strictly inside another ball."""
    out = np.zeros(len(spots), dtype=bool)
    for s in range(0, len(spots), 4096):
        depth = radii[None] - cdist(spots[s:s + 4096], centres)  # [n, K], > 0 inside
        depth[np.arange(len(depth)), own[s:s + 4096]] = -np.inf
        out[s:s + 4096] = (depth > 1e-9 * radii[None]).any(axis=1)
    return out
