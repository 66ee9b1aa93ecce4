"""Samples for fitting and measuring neural SDFs: oriented surface points and signed distances."""

from __future__ import annotations

import numpy as np
import trimesh


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
