"""A shape as skeletonisation takes it: oriented points in the normalised frame, and which side is inside.

Meshes and oriented point clouds are read with the SDF pipeline's loaders
(`inrcore.sdf.fitshape.read_shape`: normals a cloud lacks are estimated), moved into
[-extent, extent]^3 and sampled. Which points are inside comes from the generalised winding
number (Barill et al. 2018, `igl.fast_winding_number`): of the triangles for a mesh, of the
oriented points with per-point areas for a cloud; it stays right on open meshes and clouds with
holes. Shapes that enclose no volume (a flat point cloud, an open sheet) are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inrcore.errors import ShapeError
from inrcore.geometry.meshes import Normalisation
from inrcore.geometry.sampling import sample_surface
from inrcore.sdf.fitshape import ShapeReference, normalisation_of, read_shape


# Below this share of box points with winding number > 1/2 a shape counts as enclosing no volume.
MIN_INSIDE_SHARE = 1e-4


@dataclass(frozen=True, eq=False)
class SkeletonInput:
    """One shape ready to skeletonise, in the normalised frame.

    points [P, 3], normals [P, 3] (unit, outward): the oriented input points (a mesh's area-weighted
    samples, or the cloud's points, at most `n_input`); reference: the normalised shape (mesh or
    cloud) for winding numbers and pictures; normalisation: original -> normalised coordinates.
    """

    path: str
    points: np.ndarray
    normals: np.ndarray
    reference: ShapeReference
    normalisation: Normalisation

    @property
    def kind(self) -> str:
        """"mesh" or "points"."""
        return self.reference.kind


def read_skeleton_input(path, n_input: int, extent: float, seed: int = 0) -> SkeletonInput:
    """Read a mesh or oriented point cloud and take `n_input` oriented points of it, normalised.

    Raises ShapeError naming the file when it cannot be read, or encloses no volume
    (`check_encloses_volume`).
    """
    reference = read_shape(path)  # refuses flat clouds already
    normalisation = normalisation_of(reference, extent)
    moved = reference.normalised(normalisation)
    rng = np.random.default_rng(seed)
    if moved.kind == "mesh":
        points, normals = sample_surface(moved.mesh, n_input, rng)
        if signed_volume(moved.mesh) < 0:
            normals = -normals
    else:
        pick = rng.choice(len(moved.points), size=min(n_input, len(moved.points)), replace=False)
        points, normals = moved.points[np.sort(pick)], moved.normals[np.sort(pick)]
    shape = SkeletonInput(str(path), points, normals, moved, normalisation)
    check_encloses_volume(shape, extent)
    return shape


def signed_volume(mesh) -> float:
    """The signed volume of a triangle mesh (negative when its faces wind inward)."""
    triangles = np.asarray(mesh.vertices, np.float64)[np.asarray(mesh.faces)]
    return float(np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2])).sum() / 6.0)


def point_areas(points: np.ndarray, k: int = 8) -> np.ndarray:
    """Each point's share of the sampled surface: π d_k² / k with d_k the distance to its k-th
    neighbour (k points in a disc of that radius): points [P, 3] -> areas [P]."""
    from scipy.spatial import cKDTree

    k = min(k, len(points) - 1)
    if k < 1:
        return np.ones(len(points))
    distance, _ = cKDTree(points).query(points, k=k + 1)
    return np.pi * distance[:, -1] ** 2 / k


def winding_numbers(shape: SkeletonInput, queries: np.ndarray) -> np.ndarray:
    """The generalised winding number of the shape at queries [Q, 3] -> [Q] (about 1 inside, 0 outside;
    its magnitude, so a mesh wound inward reads the same)."""
    import igl

    queries = np.ascontiguousarray(queries, np.float64)
    if shape.kind == "mesh":
        mesh = shape.reference.mesh
        vertices = np.ascontiguousarray(mesh.vertices, np.float64)
        faces = np.ascontiguousarray(mesh.faces, np.int64)
        return np.abs(igl.fast_winding_number(vertices, faces, queries))
    points = np.ascontiguousarray(shape.reference.points, np.float64)
    normals = np.ascontiguousarray(shape.reference.normals, np.float64)
    return np.abs(igl.fast_winding_number(points, normals, point_areas(points), queries))


def check_encloses_volume(shape: SkeletonInput, bound: float, n_probe: int = 20000) -> None:
    """ShapeError naming the file when (almost) no point of the box has winding number above 1/2."""
    probes = np.random.default_rng(12345).uniform(-bound, bound, (n_probe, 3))
    share = float(np.mean(winding_numbers(shape, probes) > 0.5))
    if share < MIN_INSIDE_SHARE:
        raise ShapeError(shape.path, f"the {'mesh' if shape.kind == 'mesh' else 'point cloud'} encloses no volume "
                                     f"(no point of its bounding box is inside by the winding number), so it has "
                                     f"no skeleton")
