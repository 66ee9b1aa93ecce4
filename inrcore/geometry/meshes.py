"""Triangle meshes in and out of the pipeline: loading with clear errors, hashing, normalisation.

`load_mesh` turns a file into one `trimesh.Trimesh` or raises `ShapeError` naming the file and
the problem; no raw trimesh or numpy exception escapes for a bad file. `Normalisation` records
the similarity transform (centre, uniform scale) that maps a shape into the training cube, so
results can be mapped back to the original coordinates.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import trimesh

from inrcore.errors import ConfigError, ShapeError
from inrcore.geometry.plyfiles import read_ply_mesh


SUPPORTED_SUFFIXES = (".glb", ".obj", ".off", ".ply", ".stl")

_HASH_CHUNK_BYTES = 1 << 20


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Load a triangle mesh file (obj, ply, off, stl, glb) as one mesh.

    The file is read without trimesh's processing, so vertices are neither merged nor
    reordered; a scene of several meshes is concatenated into one with its node transforms
    applied. Quads and polygons come back triangulated as fans (v0, vk, vk+1). PLY files are
    read by `inrcore.geometry.plyfiles`, which also takes the triangle strips (`tristrips`) scanners
    write, and refuses an element of vertex indices of any other kind by name.

    Args:
        path: the mesh file.
    Returns:
        a `trimesh.Trimesh` with vertices [V, 3] float64 and faces [F, 3] int64, F >= 1,
        every coordinate finite, every face index in [0, V), and non-zero surface area.
    Raises:
        ShapeError: the file is missing or empty, has an unsupported extension, cannot be
            parsed, holds no faces (or faces of a kind it cannot read), has NaN or infinite
            coordinates, faces that index missing vertices, or no extent or area.
    """
    suffix = _check_file(path)
    if suffix == ".ply":
        vertices, faces = read_ply_mesh(path)
        if len(faces) == 0:
            raise ShapeError(path, "mesh has no faces")
        _check_arrays(vertices, faces, path)
        return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    # OBJ: keep the file's vertex list as is (trimesh otherwise drops unreferenced vertices
    # and splits vertices at texture seams); materials are not needed.
    options = {"maintain_order": True, "skip_materials": True} if suffix == ".obj" else {}
    try:
        scene = trimesh.load_scene(os.fspath(path), file_type=suffix[1:], process=False, **options)
    except Exception as exc:  # trimesh's parsers raise anything from IndexError to struct.error
        raise ShapeError(path, f"not a readable mesh: {type(exc).__name__}: {exc}") from exc
    vertices, faces = _scene_arrays(scene, path)
    _check_arrays(vertices, faces, path)
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Normalisation:
    """A similarity transform into the training cube: normalised = (p - center) * scale."""

    center: tuple[float, float, float]
    scale: float

    def __post_init__(self) -> None:
        center = tuple(float(c) for c in self.center)
        if len(center) != 3 or not all(math.isfinite(c) for c in center):
            raise ValueError(f"center must be three finite numbers, got {self.center!r}")
        scale = float(self.scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite positive number, got {self.scale!r}")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "scale", scale)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Original coordinates [N, 3] -> normalised coordinates [N, 3] (same float dtype)."""
        points = _float_points(points)
        return (points - np.asarray(self.center, dtype=points.dtype)) * points.dtype.type(self.scale)

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Normalised coordinates [N, 3] -> original coordinates [N, 3] (same float dtype)."""
        points = _float_points(points)
        return points / points.dtype.type(self.scale) + np.asarray(self.center, dtype=points.dtype)

    def to_dict(self) -> dict:
        """A JSON-ready dict: {"center": [x, y, z], "scale": s}."""
        return {"center": list(self.center), "scale": self.scale}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "normalisation") -> "Normalisation":
        """Rebuild from `to_dict`'s output; a malformed mapping raises ConfigError naming `where`."""
        if not isinstance(data, Mapping) or set(data) != {"center", "scale"}:
            raise ConfigError(f"{where}: expected a mapping with keys center and scale, got {data!r}")
        try:
            return cls(center=tuple(data["center"]), scale=data["scale"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc


def normalisation_for(mesh: trimesh.Trimesh, extent: float) -> Normalisation:
    """The normalisation that centres a mesh's bounding box and fits it in [-extent, extent]^3.

    The centre is the middle of the axis-aligned bounding box of the vertices the faces use;
    the scale maps the box's longest side onto [-extent, extent], i.e. scale = 2 extent / longest.
    """
    used = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces).ravel()]
    if len(used) == 0:
        raise ValueError("mesh has no faces")
    return normalisation_for_points(used, extent, what="mesh")


def normalisation_for_points(points: np.ndarray, extent: float, what: str = "points") -> Normalisation:
    """The normalisation that centres the bounding box of points [N, 3] in [-extent, extent]^3.

    Centre: the middle of the axis-aligned bounding box; scale = 2 extent / its longest side.
    `what` names the shape in errors ("mesh has zero extent").
    """
    if not (math.isfinite(extent) and extent > 0):
        raise ValueError(f"extent must be a finite positive number, got {extent!r}")
    points = _float_points(points).astype(np.float64, copy=False)
    if len(points) == 0:
        raise ValueError(f"{what} has no points")
    lower, upper = points.min(axis=0), points.max(axis=0)
    longest = float((upper - lower).max())
    if not (math.isfinite(longest) and longest > 0):
        raise ValueError(f"{what} has zero extent")
    return Normalisation(center=tuple((lower + upper) / 2.0), scale=2.0 * extent / longest)


def normalise_mesh(mesh: trimesh.Trimesh, extent: float) -> tuple[trimesh.Trimesh, Normalisation]:
    """A copy of `mesh` centred and scaled into [-extent, extent]^3, and the transform used.

    The faces are copied unchanged; `mesh` itself is not modified.
    """
    normalisation = normalisation_for(mesh, extent)
    moved = trimesh.Trimesh(
        vertices=normalisation.apply(np.asarray(mesh.vertices, dtype=np.float64)),
        faces=np.array(mesh.faces, dtype=np.int64),
        process=False,
        validate=False,
    )
    return moved, normalisation


def _check_file(path: str | os.PathLike) -> str:
    """Raise ShapeError unless `path` is a non-empty file with a supported suffix; return the suffix."""
    if not os.path.isfile(path):
        problem = "is a directory, not a file" if os.path.isdir(path) else "file does not exist"
        raise ShapeError(path, problem)
    if os.path.getsize(path) == 0:
        raise ShapeError(path, "file is empty")
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "(no extension)"
        raise ShapeError(
            path, f"unsupported format {shown}; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def _scene_arrays(scene: trimesh.Scene, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A loaded scene -> the concatenated vertices [V, 3] float64 and faces [F, 3] int64."""
    geometries = list(scene.geometry.values())
    if not geometries:
        raise ShapeError(path, "not a readable mesh: no geometry found in the file")
    if not any(isinstance(g, trimesh.Trimesh) and len(g.faces) for g in geometries):
        raise ShapeError(path, "mesh has no faces")
    try:
        mesh = scene.to_mesh()  # applies node transforms; keeps vertex order, merges nothing
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
    except Exception as exc:  # concatenating malformed parts can fail inside trimesh or numpy
        raise ShapeError(path, f"not a readable mesh: {type(exc).__name__}: {exc}") from exc
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ShapeError(path, "mesh has no faces")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ShapeError(path, f"not a readable mesh: vertices have shape {vertices.shape}")
    return vertices, faces


def _check_arrays(vertices: np.ndarray, faces: np.ndarray, path: str | os.PathLike) -> None:
    """Raise ShapeError for bad indices, non-finite coordinates, or a mesh without extent or area."""
    outside = (faces < 0) | (faces >= len(vertices))
    if outside.any():
        raise ShapeError(
            path,
            f"face indices out of range: {int(outside.any(axis=1).sum())} faces refer to "
            f"vertices outside 0..{len(vertices) - 1}",
        )
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        raise ShapeError(path, f"{int(bad.sum())} vertices have NaN or infinite coordinates")
    triangles = vertices[faces]  # [F, 3, 3]
    corners = triangles.reshape(-1, 3)
    if not (corners.max(axis=0) - corners.min(axis=0)).max() > 0:
        raise ShapeError(path, "mesh has zero extent")
    cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    if not np.linalg.norm(cross, axis=1).sum() > 0:
        raise ShapeError(path, "mesh has no surface area")


def _float_points(points: np.ndarray) -> np.ndarray:
    """Points as an [N, 3] floating array (integers become float64)."""
    points = np.asarray(points)
    if not np.issubdtype(points.dtype, np.floating):
        points = points.astype(np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected points of shape [N, 3], got {points.shape}")
    return points
