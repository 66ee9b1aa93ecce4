"""Skeletons on disk (PLY and the .ma medial-axis format) and as the mesh of their union of balls.

A skeleton is points [K, 3] with radii [K] (its balls), edges [E, 2] and triangles [F, 3]
(0-based indices into the points).

- PLY (`write_skeleton_ply`): binary little-endian, `element vertex` with float x, y, z,
  radius; `element edge` with int vertex1, vertex2 (the usual PLY edge properties);
  `element face` with a list uchar int vertex_indices. Mesh readers that know only vertices
  and faces (`inrcore.geometry.plyfiles.read_ply_mesh`, trimesh, MeshLab) read it as a mesh.
- .ma (`write_ma`), the text format of Q-MAT and Coverage Axis: a first line "V E F", then
  V lines "v x y z r", E lines "e i j" and F lines "f i j k".
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import trimesh
from skimage.measure import marching_cubes

from inrcore.files import write_atomic, write_text_atomic
from inrcore.geometry.plyfiles import read_ply_header


VERTEX_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("radius", "<f4")])
EDGE_DTYPE = np.dtype([("vertex1", "<i4"), ("vertex2", "<i4")])
FACE_DTYPE = np.dtype([("count", "u1"), ("vertex_indices", "<i4", (3,))])
BLOCK = 8  # grid points per side of the blocks `balls_mesh` prunes balls over


def skeleton_arrays(points, radii, edges, faces) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four arrays as points [K, 3] float64, radii [K] float64, edges [E, 2] and faces
    [F, 3] int64, checked: matching lengths, indices within 0 .. K-1."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(radii) != len(points):
        raise ValueError(f"{len(radii)} radii for {len(points)} points")
    for name, indices in (("edges", edges), ("faces", faces)):
        if indices.size and (indices.min() < 0 or indices.max() >= len(points)):
            raise ValueError(f"{name} index a point outside 0..{len(points) - 1}")
    return points, radii, edges, faces


def write_skeleton_ply(path, points, radii, edges, faces) -> Path:
    """Write a skeleton as a binary little-endian PLY (see the module docstring), atomically.

    Args:
        points [K, 3], radii [K], edges [E, 2], faces [F, 3].
    """
    points, radii, edges, faces = skeleton_arrays(points, radii, edges, faces)
    vertex = np.empty(len(points), dtype=VERTEX_DTYPE)
    for axis, name in enumerate("xyz"):
        vertex[name] = points[:, axis]
    vertex["radius"] = radii
    edge = np.empty(len(edges), dtype=EDGE_DTYPE)
    edge["vertex1"], edge["vertex2"] = edges[:, 0], edges[:, 1]
    face = np.empty(len(faces), dtype=FACE_DTYPE)
    face["count"], face["vertex_indices"] = 3, faces
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment skeleton: balls, edges and triangles\n"
        f"element vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"property float radius\nelement edge {len(edges)}\nproperty int vertex1\nproperty int vertex2\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    body = header.encode("ascii") + vertex.tobytes() + edge.tobytes() + face.tobytes()
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(body))


def read_skeleton_ply(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The points [K, 3], radii [K] (float64), edges [E, 2] and faces [F, 3] (int64) of a PLY
    laid out as `write_skeleton_ply` writes it (binary little-endian, triangles only)."""
    header = read_ply_header(path)
    if header.format != "binary_little_endian":
        raise ValueError(f"{path}: a skeleton PLY is binary_little_endian, not {header.format}")
    expected = {"vertex": VERTEX_DTYPE, "edge": EDGE_DTYPE, "face": FACE_DTYPE}
    data = Path(path).read_bytes()
    at, rows = header.data_start, {}
    for element in header.elements:
        dtype = expected.get(element.name)
        found = [(p.name, p.count_dtype, p.dtype) for p in element.properties]
        if dtype is None or found != _ply_properties(dtype):
            raise ValueError(f"{path}: element '{element.name}' is not laid out as a skeleton's")
        rows[element.name] = np.frombuffer(data, dtype=dtype, count=element.count, offset=at)
        at += element.count * dtype.itemsize
    vertex = rows.get("vertex", np.zeros(0, VERTEX_DTYPE))
    face = rows.get("face", np.zeros(0, FACE_DTYPE))
    if (face["count"] != 3).any():
        raise ValueError(f"{path}: faces other than triangles")
    edge = rows.get("edge", np.zeros(0, EDGE_DTYPE))
    points = np.stack([vertex[name] for name in "xyz"], axis=1).astype(np.float64).reshape(-1, 3)
    return (points, vertex["radius"].astype(np.float64), np.stack([edge["vertex1"], edge["vertex2"]], axis=1)
            .astype(np.int64).reshape(-1, 2), face["vertex_indices"].astype(np.int64).reshape(-1, 3))


def _ply_properties(dtype: np.dtype) -> list[tuple[str, object, str]]:
    """(name, list length type or None, value type) of each field of a row dtype, PLY's way."""
    return [(name, dtype["count"].str[1:], dtype[name].base.str[1:]) if dtype[name].shape else (name, None, dtype[name].str[1:])
            for name in dtype.names if name != "count"]


def write_ma(path, points, radii, edges, faces) -> Path:
    """Write a skeleton as a .ma text file (see the module docstring), atomically; numbers are
    written with `repr`, so they read back exactly."""
    points, radii, edges, faces = skeleton_arrays(points, radii, edges, faces)
    lines = [f"{len(points)} {len(edges)} {len(faces)}"]
    lines += [f"v {x!r} {y!r} {z!r} {r!r}" for (x, y, z), r in zip(points.tolist(), radii.tolist())]
    lines += [f"e {i} {j}" for i, j in edges.tolist()]
    lines += [f"f {i} {j} {k}" for i, j, k in faces.tolist()]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_ma(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The points [K, 3], radii [K], edges [E, 2] and faces [F, 3] of a .ma file, checked
    against the counts of its first line."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or len(lines[0]) != 3:
        raise ValueError(f"{path}: the first line of a .ma file is 'V E F'")
    counts = [int(word) for word in lines[0]]
    rows = {"v": [], "e": [], "f": []}
    for number, words in enumerate(lines[1:], start=2):
        width = {"v": 5, "e": 3, "f": 4}.get(words[0])
        if width is None or len(words) != width:
            raise ValueError(f"{path}: line {number} is not a 'v x y z r', 'e i j' or 'f i j k' line")
        rows[words[0]].append(words[1:])
    found = [len(rows[key]) for key in "vef"]
    if found != counts:
        raise ValueError(f"{path}: the first line announces {counts} (V E F), the file holds {found}")
    vertices = np.array(rows["v"], dtype=np.float64).reshape(-1, 4)
    return skeleton_arrays(vertices[:, :3], vertices[:, 3], np.array(rows["e"], dtype=np.int64),
                           np.array(rows["f"], dtype=np.int64))


def balls_mesh(points, radii, resolution: int = 128, padding: float = 0.05) -> trimesh.Trimesh:
    """The boundary of the union of the balls as one mesh, by marching cubes.

    f(x) = min_i (|x - c_i| - r_i) is sampled on a grid of cubic cells over the balls' bounding
    box grown by `padding` x its longest side on every side (and at least two cells), with
    about `resolution` points along that longest side. Every f_i is 1-Lipschitz, so within a
    block of 8^3 grid points (half-diagonal rho about its centre b) only balls with
    f_i(b) <= f(b) + 2 rho can give the minimum, and f is computed from those; a block with
    |f(b)| > rho + one cell holds no zero crossing, nor does it border one, and is filled with
    f(b), whose sign is right there. So f is exact within a cell of the surface and of the
    right sign everywhere: the mesh is that of the exact field. About 0.2 s for 50 balls and
    0.7 s for 300 at resolution 128 on two cores.

    Args:
        points [K, 3], radii [K]: balls of radius <= 0 are left out.
    Returns:
        a watertight mesh in the points' coordinates, normals outward; no faces when no ball
        is left.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    keep = radii > 0
    centres, radii = points[keep], radii[keep]
    if len(centres) == 0:
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64), process=False)
    low, high = (centres - radii[:, None]).min(axis=0), (centres + radii[:, None]).max(axis=0)
    longest = float((high - low).max())
    spacing = longest * (1.0 + 2.0 * padding) / (max(int(resolution), 8) - 1)
    margin = max(padding * longest, 2.0 * spacing)
    low = low - margin
    shape = tuple(int(n) for n in np.ceil((high + margin - low) / spacing).astype(int) + 1)
    values = _union_field(centres, radii, low, spacing, shape)
    if not (values.min() < 0.0 < values.max()):
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64), process=False)
    vertices, faces, _, _ = marching_cubes(values, level=0.0, spacing=(spacing,) * 3, gradient_direction="descent")
    return trimesh.Trimesh(vertices=vertices.astype(np.float64) + low, faces=faces, process=False)


def _union_field(centres: np.ndarray, radii: np.ndarray, low: np.ndarray, spacing: float,
                 shape: tuple[int, int, int]) -> np.ndarray:
    """min_i (|x - c_i| - r_i) [R0, R1, R2] float32 at the grid points low + spacing * index."""
    values = np.empty(shape, dtype=np.float32)
    counts = [math.ceil(n / BLOCK) for n in shape]
    index = np.stack(np.meshgrid(*[np.arange(n) for n in counts], indexing="ij"), axis=-1).reshape(-1, 3)
    sizes = np.minimum(shape, (index + 1) * BLOCK) - index * BLOCK  # [B, 3] points per side
    middles = low + spacing * (index * BLOCK + (sizes - 1) / 2.0)  # [B, 3]
    reach = spacing * np.linalg.norm((sizes - 1) / 2.0, axis=1)  # [B] half-diagonals
    field = np.linalg.norm(middles[:, None, :] - centres[None], axis=2) - radii[None]  # [B, K]
    least = field.min(axis=1)
    offsets = np.stack(np.meshgrid(*[np.arange(BLOCK)] * 3, indexing="ij"), axis=-1).reshape(-1, 3) * spacing
    for block in range(len(index)):
        where = tuple(slice(i * BLOCK, i * BLOCK + n) for i, n in zip(index[block], sizes[block]))
        if abs(least[block]) > reach[block] + spacing:
            values[where] = least[block]
            continue
        near = field[block] <= least[block] + 2.0 * reach[block]
        corner = low + spacing * index[block] * BLOCK
        grid = (corner + offsets).reshape(BLOCK, BLOCK, BLOCK, 3)[: sizes[block][0], : sizes[block][1], : sizes[block][2]]
        distance = np.linalg.norm(grid[..., None, :] - centres[near], axis=-1) - radii[near]
        values[where] = distance.min(axis=-1)
    return values
