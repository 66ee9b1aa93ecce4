"""Shapes whose medial axes are known in closed form, for tests and the skeleton benchmark.

Each shape is centred at the origin; the capsule, the cylinder and the torus have z as their
axis (the axis of `trimesh.creation`'s capsule, cylinder and torus). Every shape offers:

- `sdf(points [N, 3]) -> [N]`: the exact signed distance (negative inside), in torch, so it
  is differentiable and follows the points' device and dtype;
- `mesh() -> trimesh.Trimesh`: a watertight triangle mesh whose vertices lie on the surface;
- `medial_samples(n) -> [M, 3]`: points on the true medial axis, about n of them at an even
  spacing (a single point for the sphere);
- `true_radius(points [N, 3]) -> [N]`: the inscribed ball's radius at medial points, -sdf;
- `distance_to_medial_axis(points [N, 3]) -> [N]`: the exact Euclidean distance to the axis;
- `betti1`: the first Betti number of the true medial axis (1 for the torus, 0 otherwise).

The medial axes: the sphere's centre; the capsule's segment |z| <= half_length; the torus's
core circle of radius `major` in z = 0; the cylinder's axis |z| <= h - rho plus two cones
|z| = h - rho + s (s the distance to the axis, s <= rho), where the side and a cap are equally
near; the box's medial surface, the points whose nearest face is not unique: one rectangle
midway between the two nearest opposite faces (of the thinnest axis) and one planar piece
bisecting each of the 12 edges' dihedral angles (a trapezoid or a triangle).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable

import numpy as np
import torch
import trimesh


@dataclasses.dataclass(frozen=True)
class AnalyticShape:
    """A shape with a known medial axis; see the module docstring for what each method gives."""

    name: str = dataclasses.field(init=False, default="shape")
    betti1: int = dataclasses.field(init=False, default=0)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mesh(self) -> trimesh.Trimesh:
        raise NotImplementedError

    def medial_samples(self, n: int = 2000) -> np.ndarray:
        raise NotImplementedError

    def distance_to_medial_axis(self, points: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def bounding_half_extents(self) -> np.ndarray:
        """The half sides [3] of the shape's bounding box (centred at the origin)."""
        raise NotImplementedError

    @property
    def diagonal(self) -> float:
        """The length of the bounding box's diagonal."""
        return float(2.0 * np.linalg.norm(self.bounding_half_extents()))

    def true_radius(self, points: np.ndarray) -> np.ndarray:
        """The radius [N] of the largest ball inside the shape centred at each point [N, 3]: -sdf."""
        values = self.sdf(torch.as_tensor(_points(points)))
        return -values.detach().numpy()


@dataclasses.dataclass(frozen=True)
class Sphere(AnalyticShape):
    radius: float = 0.8
    name: str = dataclasses.field(init=False, default="sphere")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return points.norm(dim=-1) - self.radius

    def mesh(self, subdivisions: int = 4) -> trimesh.Trimesh:
        return trimesh.creation.icosphere(subdivisions=subdivisions, radius=self.radius)

    def medial_samples(self, n: int = 2000) -> np.ndarray:
        return np.zeros((1, 3))

    def distance_to_medial_axis(self, points: np.ndarray) -> np.ndarray:
        return np.linalg.norm(_points(points), axis=1)

    def bounding_half_extents(self) -> np.ndarray:
        return np.full(3, float(self.radius))


@dataclasses.dataclass(frozen=True)
class Capsule(AnalyticShape):
    """The points within `radius` of the segment from (0, 0, -half_length) to (0, 0, half_length)."""

    radius: float = 0.35
    half_length: float = 0.5
    name: str = dataclasses.field(init=False, default="capsule")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return _distance_to_z_segment(points, self.half_length) - self.radius

    def mesh(self, count: int = 48) -> trimesh.Trimesh:
        return trimesh.creation.capsule(height=2.0 * self.half_length, radius=self.radius, count=[count, count])

    def medial_samples(self, n: int = 2000) -> np.ndarray:
        z = np.linspace(-self.half_length, self.half_length, max(int(n), 2))
        return np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=1)

    def distance_to_medial_axis(self, points: np.ndarray) -> np.ndarray:
        return _distance_to_z_segment(torch.as_tensor(_points(points)), self.half_length).numpy()

    def bounding_half_extents(self) -> np.ndarray:
        return np.array([self.radius, self.radius, self.radius + self.half_length], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Torus(AnalyticShape):
    """The points within `minor` of the circle of radius `major` about the z axis in z = 0."""

    major: float = 0.6
    minor: float = 0.25
    name: str = dataclasses.field(init=False, default="torus")
    betti1: int = dataclasses.field(init=False, default=1)

    def __post_init__(self):
        if not self.major > self.minor > 0:
            raise ValueError(f"a torus needs major > minor > 0, got {self.major}, {self.minor}")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return self._core_distance(points) - self.minor

    def _core_distance(self, points: torch.Tensor) -> torch.Tensor:
        s = points[..., :2].norm(dim=-1)
        return torch.stack([s - self.major, points[..., 2]], dim=-1).norm(dim=-1)

    def mesh(self, major_sections: int = 96, minor_sections: int = 48) -> trimesh.Trimesh:
        return trimesh.creation.torus(self.major, self.minor, major_sections=major_sections,
                                      minor_sections=minor_sections)

    def medial_samples(self, n: int = 2000) -> np.ndarray:
        angle = np.linspace(0.0, 2.0 * np.pi, max(int(n), 3), endpoint=False)
        return np.stack([self.major * np.cos(angle), self.major * np.sin(angle), np.zeros_like(angle)], axis=1)

    def distance_to_medial_axis(self, points: np.ndarray) -> np.ndarray:
        return self._core_distance(torch.as_tensor(_points(points))).numpy()

    def bounding_half_extents(self) -> np.ndarray:
        return np.array([self.major + self.minor] * 2 + [self.minor], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Cylinder(AnalyticShape):
    """A solid cylinder of `radius` about the z axis, |z| <= half_height (> radius)."""

    radius: float = 0.35
    half_height: float = 0.8
    name: str = dataclasses.field(init=False, default="cylinder")

    def __post_init__(self):
        if not self.half_height > self.radius > 0:
            raise ValueError(f"a cylinder needs half_height > radius > 0, got {self.half_height}, {self.radius}")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        q = torch.stack([points[..., :2].norm(dim=-1) - self.radius, points[..., 2].abs() - self.half_height], -1)
        return q.max(dim=-1).values.clamp(max=0.0) + q.clamp(min=0.0).norm(dim=-1)

    def mesh(self, sections: int = 64, subdivisions: int = 3) -> trimesh.Trimesh:
        """trimesh's cylinder, subdivided; the side's new vertices are pushed back onto the side."""
        mesh = trimesh.creation.cylinder(radius=self.radius, height=2.0 * self.half_height, sections=sections)
        for _ in range(subdivisions):
            mesh = mesh.subdivide()
        vertices = np.array(mesh.vertices, dtype=np.float64)
        side = np.unique(mesh.faces[np.abs(mesh.face_normals[:, 2]) < 0.5])
        vertices[side, :2] *= (self.radius / np.linalg.norm(vertices[side, :2], axis=1))[:, None]
        return trimesh.Trimesh(vertices=vertices, faces=mesh.faces, process=False)

    def medial_samples(self, n: int = 2000) -> np.ndarray:
        rho, flat = self.radius, self.half_height - self.radius
        cone_area = math.sqrt(2.0) * math.pi * rho**2  # each cone: slant rho sqrt 2, base radius rho
        step = _spacing_for(n, length=2.0 * flat, area=2.0 * cone_area)
        z = np.linspace(-flat, flat, max(2, math.ceil(2.0 * flat / step) + 1))
        parts = [np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=1)]
        for s in np.linspace(0.0, rho, max(2, math.ceil(rho * math.sqrt(2.0) / step) + 1))[1:]:
            angle = np.linspace(0.0, 2.0 * np.pi, max(3, math.ceil(2.0 * np.pi * s / step)), endpoint=False)
            ring = np.stack([s * np.cos(angle), s * np.sin(angle), np.full_like(angle, flat + s)], axis=1)
            parts += [ring, ring * np.array([1.0, 1.0, -1.0])]
        return np.concatenate(parts)

    def distance_to_medial_axis(self, points: np.ndarray) -> np.ndarray:
        """In the meridian half-plane (s, |z|) the axis is two segments: (0, 0)-(0, h - rho) and
        (0, h - rho)-(rho, h); by the symmetry of revolution the 3D distance is the 2D one."""
        points = _points(points)
        s, z = np.linalg.norm(points[:, :2], axis=1), np.abs(points[:, 2])
        flat = self.half_height - self.radius
        on_axis = np.hypot(s, z - np.clip(z, 0.0, flat))
        # the cone's segment from (0, flat) along (1, 1) / sqrt 2 for a length rho sqrt 2
        t = np.clip((s + (z - flat)) / 2.0, 0.0, self.radius)
        on_cone = np.hypot(s - t, z - flat - t)
        return np.minimum(on_axis, on_cone)

    def bounding_half_extents(self) -> np.ndarray:
        return np.array([self.radius, self.radius, self.half_height], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Box(AnalyticShape):
    """The box |x_i| <= half_extents[i]."""

    half_extents: tuple[float, float, float] = (0.8, 0.5, 0.35)
    name: str = dataclasses.field(init=False, default="box")

    def __post_init__(self):
        if len(self.half_extents) != 3 or min(self.half_extents) <= 0:
            raise ValueError(f"a box needs three positive half extents, got {self.half_extents}")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        q = points.abs() - points.new_tensor(self.half_extents)
        return q.max(dim=-1).values.clamp(max=0.0) + q.clamp(min=0.0).norm(dim=-1)

    def mesh(self, subdivisions: int = 5) -> trimesh.Trimesh:
        mesh = trimesh.creation.box(extents=2.0 * self.bounding_half_extents())
        for _ in range(subdivisions):
            mesh = mesh.subdivide()
        return mesh

    def medial_pieces(self) -> list[np.ndarray]:
        """The medial surface as convex planar polygons, each [P, 3] with its corners in order.

        A point inside is t_f from face f; it is medial when the least t_f is reached twice.
        Opposite faces of axis i tie on x_i = 0, where that least value is h_i: the rectangle
        |x_j| <= h_j - h_i, |x_k| <= h_k - h_i, empty unless i is the thinnest axis. Faces
        s_i e_i and s_j e_j tie on x_i = s_i (h_i - t), x_j = s_j (h_j - t), the other faces being
        no nearer while t <= min(h_i, h_j) and |x_k| <= h_k - t: a trapezoid in (t, x_k).
        """
        h = self.bounding_half_extents()
        pieces = []
        for i in range(3):
            j, k = [a for a in range(3) if a != i]
            a, b = h[j] - h[i], h[k] - h[i]
            if a > 0 and b > 0:
                corners = np.zeros((4, 3))
                corners[:, j], corners[:, k] = [a, -a, -a, a], [b, b, -b, -b]
                pieces.append(corners)
        for (i, j), si, sj in itertools.product(itertools.combinations(range(3), 2), (1.0, -1.0), (1.0, -1.0)):
            k = 3 - i - j
            m = min(h[i], h[j])
            tu = [(0.0, -h[k]), (0.0, h[k]), (m, h[k] - m), (m, m - h[k])] if h[k] > m else \
                [(0.0, -h[k]), (0.0, h[k]), (h[k], 0.0)]
            corners = np.zeros((len(tu), 3))
            for row, (t, u) in enumerate(tu):
                corners[row, i], corners[row, j], corners[row, k] = si * (h[i] - t), sj * (h[j] - t), u
            pieces.append(corners)
        return pieces

    def medial_samples(self, n: int = 2000) -> np.ndarray:
        pieces = self.medial_pieces()
        step = _spacing_for(n, length=0.0, area=sum(_polygon_area(p) for p in pieces))
        return np.concatenate([_polygon_grid(p, step) for p in pieces])

    def distance_to_medial_axis(self, points: np.ndarray) -> np.ndarray:
        points = _points(points)
        return np.min([_distance_to_polygon(points, p) for p in self.medial_pieces()], axis=0)

    def bounding_half_extents(self) -> np.ndarray:
        return np.asarray(self.half_extents, dtype=np.float64)


def sphere(radius: float = 0.8) -> Sphere:
    return Sphere(radius=radius)


def capsule(radius: float = 0.35, half_length: float = 0.5) -> Capsule:
    """A capsule along the z axis: its segment runs from z = -half_length to half_length."""
    return Capsule(radius=radius, half_length=half_length)


def torus(major: float = 0.6, minor: float = 0.25) -> Torus:
    """A torus about the z axis."""
    return Torus(major=major, minor=minor)


def box(half_extents: tuple[float, float, float] = (0.8, 0.5, 0.35)) -> Box:
    return Box(half_extents=tuple(float(v) for v in half_extents))


def cylinder(radius: float = 0.35, half_height: float = 0.8) -> Cylinder:
    """A cylinder along the z axis."""
    return Cylinder(radius=radius, half_height=half_height)


ANALYTIC_SHAPES: dict[str, Callable[..., AnalyticShape]] = {
    "sphere": sphere, "capsule": capsule, "torus": torus, "box": box, "cylinder": cylinder,
}


def _points(points) -> np.ndarray:
    """Points [N, 3] float64 from any array-like or tensor (on any device)."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


def _distance_to_z_segment(points: torch.Tensor, half_length: float) -> torch.Tensor:
    """Distance [N] from points [N, 3] to the segment |z| <= half_length of the z axis."""
    nearest_z = points[..., 2].clamp(-half_length, half_length)
    return torch.stack([points[..., 0], points[..., 1], points[..., 2] - nearest_z], dim=-1).norm(dim=-1)


def _spacing_for(n: int, length: float, area: float) -> float:
    """The spacing s at which a curve of `length` and a surface of `area` take about n points:
    length / s + area / s^2 = n."""
    n = max(int(n), 1)
    return (length + math.sqrt(length**2 + 4.0 * n * area)) / (2.0 * n)


def _polygon_frame(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit normal (Newell's, so the corners turn counter-clockwise about it) and two unit
    in-plane axes of a planar polygon [P, 3]."""
    normal = np.cross(corners, np.roll(corners, -1, axis=0)).sum(axis=0)
    normal /= np.linalg.norm(normal)
    first = corners[1] - corners[0]
    first /= np.linalg.norm(first)
    return normal, first, np.cross(normal, first)


def _polygon_area(corners: np.ndarray) -> float:
    return float(0.5 * np.linalg.norm(np.cross(corners, np.roll(corners, -1, axis=0)).sum(axis=0)))


def _inside_polygon(points: np.ndarray, corners: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Whether each point's projection onto a convex polygon's plane lies in the polygon: [N] bool."""
    edges = np.roll(corners, -1, axis=0) - corners  # [P, 3]
    sides = np.einsum("pk,npk->np", np.cross(normal, edges), points[:, None, :] - corners[None])  # [N, P]
    return (sides >= -1e-12).all(axis=1)


def _polygon_grid(corners: np.ndarray, step: float) -> np.ndarray:
    """Points [M, 3] of a square grid of `step` in a convex planar polygon, plus its corners."""
    normal, e1, e2 = _polygon_frame(corners)
    u, v = (corners - corners[0]) @ e1, (corners - corners[0]) @ e2
    gu = np.arange(u.min(), u.max() + step, step)
    gv = np.arange(v.min(), v.max() + step, step)
    grid = corners[0] + gu[:, None, None] * e1 + gv[None, :, None] * e2
    grid = grid.reshape(-1, 3)
    return np.concatenate([corners, grid[_inside_polygon(grid, corners, normal)]])


def _distance_to_polygon(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Exact distance [N] from points [N, 3] to a convex planar polygon [P, 3] (ordered corners)."""
    normal, _, _ = _polygon_frame(corners)
    plane = np.abs((points - corners[0]) @ normal)
    ends = np.roll(corners, -1, axis=0)
    best = np.full(len(points), np.inf)
    for a, b in zip(corners, ends):
        along = b - a
        t = np.clip((points - a) @ along / max(float(along @ along), 1e-300), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * along), axis=1))
    return np.where(_inside_polygon(points, corners, normal), plane, best)
