"""Oriented point clouds as input: loading .xyz / .ply / .npz, validation, normal estimation.

Every problem with a file is a `ShapeError` naming the file. Normals that a file lacks are
estimated by PCA over each point's neighbours and oriented consistently by propagation along
a minimum spanning tree of the neighbour graph (Hoppe et al. 1992), then made to point away
from the cloud's centre where that is unambiguous.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ShapeError
from .files import write_atomic

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
    """Unit normals [N, 3] for points [N, 3], consistently oriented.

    PCA of each point's k nearest neighbours gives an unoriented normal; orientation spreads
    from the point farthest from the centroid (whose normal is made to point outward) along a
    minimum spanning tree weighted by 1 - |n_i . n_j|, so neighbours with similar normals
    are visited first. Raises ShapeError if the neighbour graph falls apart into pieces,
    since their relative orientation is then unknown.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    k = min(k, len(points) - 1)
    _, neighbours = cKDTree(points).query(points, k=k + 1)
    local = points[neighbours] - points[neighbours].mean(axis=1, keepdims=True)  # [N, k+1, 3]
    _, _, vt = np.linalg.svd(local, full_matrices=False)
    normals = vt[:, -1, :]  # direction of least spread

    rows = np.repeat(np.arange(len(points)), k)
    cols = neighbours[:, 1:].reshape(-1)
    weights = 1.0 - np.abs(np.einsum("ij,ij->i", normals[rows], normals[cols])) + 1e-6
    graph = coo_matrix((weights, (rows, cols)), shape=(len(points),) * 2).tocsr()
    graph = graph.maximum(graph.T)
    n_parts, _ = connected_components(graph, directed=False)
    if n_parts > 1:
        raise ShapeError(path, f"cannot orient normals: the {k}-neighbour graph has {n_parts} separate pieces")
    tree = minimum_spanning_tree(graph)
    tree = tree.maximum(tree.T)
    seed = int(np.argmax(np.linalg.norm(points - points.mean(axis=0), axis=1)))
    if np.dot(normals[seed], points[seed] - points.mean(axis=0)) < 0:
        normals[seed] = -normals[seed]
    order, parents = breadth_first_order(tree, seed, directed=False, return_predecessors=True)
    for node in order[1:]:
        if np.dot(normals[node], normals[parents[node]]) < 0:
            normals[node] = -normals[node]
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
