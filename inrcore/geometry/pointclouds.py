"""Oriented point clouds as input: loading .xyz / .ply / .npz, validation, normal estimation.

Every problem with a file is a `ShapeError` naming the file. Normals that a file lacks are
estimated by PCA over each point's neighbours and oriented consistently by propagation along
a minimum spanning tree of the neighbour graph (Hoppe et al. 1992), each connected piece
seeded and finally checked so that its normals point outward.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from inrcore.errors import ShapeError
from inrcore.files import write_atomic


POINT_SUFFIXES = (".xyz", ".ply", ".npz")
MIN_POINTS = 100


def load_point_cloud(path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Points [N, 3] float64 and unit normals [N, 3] (or None when the file has none), validated.

    .xyz: whitespace-separated rows of 3 (x y z) or 6 (x y z nx ny nz) numbers.
    .ply: vertices with optional nx ny nz properties (faces, if any, are ignored).
    .npz: arrays "points" [N, 3] and optional "normals" [N, 3].
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_SUFFIXES:
        raise ShapeError(path, f"unsupported point cloud format '{suffix}'; expected one of {', '.join(POINT_SUFFIXES)}")
    if not path.is_file():
        raise ShapeError(path, "file does not exist")
    if os.path.getsize(path) == 0:
        raise ShapeError(path, "file is empty")
    try:
        points, normals = _READERS[suffix](path)
    except ShapeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file
        raise ShapeError(path, f"not a readable point cloud: {type(exc).__name__}: {exc}") from exc
    return validate_point_cloud(points, normals, path)


def validate_point_cloud(points, normals, path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Check shapes, finiteness, duplicates, count and flatness; normalise normals to unit length."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ShapeError(path, f"points must be an N x 3 array, got shape {points.shape}")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise ShapeError(path, f"{int(bad.sum())} points have NaN or infinite coordinates")
    if len(points) < MIN_POINTS:
        raise ShapeError(path, f"only {len(points)} points; at least {MIN_POINTS} are needed")
    unique = np.unique(points, axis=0)
    if len(unique) < len(points):
        raise ShapeError(path, f"{len(points) - len(unique)} duplicate points")
    extent = np.ptp(points, axis=0).max()
    singular = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    if singular[-1] <= 1e-9 * max(singular[0], 1e-300) or extent == 0:
        raise ShapeError(path, "all points lie on one plane (or line); a surface cannot be fitted")
    if normals is None:
        return points, None
    normals = np.asarray(normals, dtype=np.float64)
    if normals.shape != points.shape:
        raise ShapeError(path, f"normals have shape {normals.shape}, points {points.shape}")
    length = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(length) | (length < 1e-12)
    if bad.any():
        raise ShapeError(path, f"{int(bad.sum())} normals are zero, NaN or infinite")
    return points, normals / length[:, None]


def estimate_normals(points: np.ndarray, k: int = 16, path="point cloud") -> np.ndarray:
    """Unit normals [N, 3] for points [N, 3], consistently oriented (Hoppe et al. 1992).

    PCA of each point's k nearest neighbours gives an unoriented normal n_i and a tangent-plane
    centre o_i (the neighbourhood's mean). Orientation then spreads over the Riemannian graph
    (the symmetric k-neighbour graph) along its minimum spanning tree, breadth first, each
    child flipped to agree with its parent. An edge costs 1 - |n_i . n_j| (Hoppe's weight:
    neighbours with parallel normals are visited first) plus the mean of |n_i . e| and
    |n_j . e| for the unit direction e from o_i to o_j, so that the tree goes along the surface
    rather than across a thin part to the opposite side, whose normals are also parallel.

    Each connected piece of the graph is seeded at its point of largest |n . (p - c)|, c the
    piece's centroid: that point lies on the piece's convex hull, where the outward normal
    points away from c, so the seed's sign is known. Finally the same rule decides each piece
    as a whole: the mean of n . (p - c) over a closed surface is 3 x volume / area > 0 for
    outward normals, so a piece where it is negative is flipped. (A piece nested inside
    another, like the inner wall of a hollow shell, is thus also made to face away from its
    own centre.)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise ShapeError(path, f"cannot estimate normals of {points.shape} points; at least 3 x 3 are needed")
    n_points = len(points)
    k = max(2, min(k, n_points - 1))
    _, neighbours = cKDTree(points).query(points, k=k + 1)
    around = points[neighbours]  # [N, k+1, 3]
    centres = around.mean(axis=1)  # tangent-plane centres o_i
    local = around - centres[:, None, :]
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))
    normals = np.ascontiguousarray(vectors[:, :, 0])  # direction of least spread

    # The Riemannian graph with its edge costs, and its minimum spanning tree.
    others = neighbours[:, 1:]  # [N, k]
    other_normals = normals[others]  # [N, k, 3]
    step = centres[others] - centres[:, None, :]
    length = np.maximum(np.linalg.norm(step, axis=2), 1e-300)
    across = np.abs(np.einsum("ni,nki->nk", normals, step)) + np.abs(np.einsum("nki,nki->nk", other_normals, step))
    across /= 2 * length
    weights = 1.0 - np.abs(np.einsum("ni,nki->nk", normals, other_normals)) + across + 1e-6
    rows = np.repeat(np.arange(n_points), k)
    cols = others.reshape(-1)
    keep = rows != cols  # (a point repeated in a cloud may list another copy first)
    graph = coo_matrix((weights.reshape(-1)[keep], (rows[keep], cols[keep])), shape=(n_points, n_points)).tocsr()
    graph = graph.maximum(graph.T)
    n_parts, part = connected_components(graph, directed=False)
    tree = minimum_spanning_tree(graph).tocoo()

    # One seed per piece, oriented away from the piece's centroid.
    counts = np.bincount(part, minlength=n_parts)
    part_centroids = np.stack([np.bincount(part, points[:, d], n_parts) for d in range(3)], axis=1) / counts[:, None]
    radial = np.einsum("ij,ij->i", normals, points - part_centroids[part])
    order_by_reach = np.lexsort((-np.abs(radial), part))  # within each piece, largest |n . (p - c)| first
    seeds = order_by_reach[np.searchsorted(part[order_by_reach], np.arange(n_parts))]
    normals[seeds[radial[seeds] < 0]] *= -1

    # Breadth-first over the forest, from a virtual root (index N) joined to every seed.
    root = n_points
    forest = coo_matrix(
        (np.r_[np.ones(tree.nnz), np.ones(n_parts)], (np.r_[tree.row, np.full(n_parts, root)], np.r_[tree.col, seeds])),
        shape=(n_points + 1, n_points + 1),
    ).tocsr()
    order, parents = breadth_first_order(forest, root, directed=False, return_predecessors=True)
    order = order[1:]
    children = order[parents[order] != root]
    agrees = np.einsum("ij,ij->i", normals[children], normals[parents[children]]) >= 0
    sign, parent_of = [1.0] * (n_points + 1), parents.tolist()
    for child, same in zip(children.tolist(), agrees.tolist()):  # parents come before their children
        sign[child] = sign[parent_of[child]] if same else -sign[parent_of[child]]
    normals *= np.asarray(sign[:n_points])[:, None]

    # Whole pieces that face inward on the whole (mean n . (p - c) < 0) are turned around.
    radial = np.einsum("ij,ij->i", normals, points - part_centroids[part])
    inward = np.bincount(part, radial, n_parts) < 0
    normals[inward[part]] *= -1
    return normals


def _read_xyz(path: Path):
    data = np.loadtxt(path, ndmin=2)
    if data.shape[1] not in (3, 6):
        raise ShapeError(path, f"expected 3 or 6 numbers per row (x y z [nx ny nz]), got {data.shape[1]}")
    return data[:, :3], (data[:, 3:] if data.shape[1] == 6 else None)


def _read_ply(path: Path):
    import trimesh

    loaded = trimesh.load(path, process=False)
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))))
    raw = loaded.metadata.get("_ply_raw", {}).get("vertex", {}).get("data", {})
    normals = None
    # ASCII PLY data comes as a dict of columns, binary PLY as one structured array.
    keys = raw.dtype.names or () if isinstance(raw, np.ndarray) else raw
    if all(key in keys for key in ("nx", "ny", "nz")):
        normals = np.hstack([np.asarray(raw[key], dtype=np.float64).reshape(-1, 1) for key in ("nx", "ny", "nz")])
    return vertices, normals


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as data:
        if "points" not in data:
            raise ShapeError(path, f"npz file has no 'points' array (it has: {', '.join(data.files) or 'nothing'})")
        return data["points"], (data["normals"] if "normals" in data else None)


_READERS = {".xyz": _read_xyz, ".ply": _read_ply, ".npz": _read_npz}


def write_point_cloud_ply(path, points: np.ndarray, normals: Optional[np.ndarray] = None) -> Path:
    """Write points [N, 3] (and unit normals [N, 3]) as a binary little-endian PLY with float32
    x y z [nx ny nz] vertex properties, which `load_point_cloud` reads back; atomically (a
    temporary name in the same folder, then a rename)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    names = ["x", "y", "z"]
    columns = [points]
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float32).reshape(-1, 3)
        if len(normals) != len(points):
            raise ValueError(f"{len(normals)} normals for {len(points)} points")
        names += ["nx", "ny", "nz"]
        columns.append(normals)
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {len(points)}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    body = np.ascontiguousarray(np.hstack(columns).astype("<f4")).tobytes()
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(header.encode("ascii") + body))
