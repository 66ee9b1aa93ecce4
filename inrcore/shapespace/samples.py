"""DeepSDF's training samples of one shape, and the occupancy samples of the Occupancy Network.

All in the normalised frame (the bounding box centred, its longest side spanning [-extent, extent]).
Signs come from the generalised winding number (`inrcore.geometry.sampling.signed_distance`), so
meshes with holes or inconsistent orientation still get sensible inside/outside labels, headless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import trimesh

from inrcore.errors import ShapeError
from inrcore.geometry.meshes import Normalisation, load_mesh, normalise_mesh
from inrcore.geometry.sampling import sample_surface, signed_distance
from inrcore.shapespace.occnet_training import OccupancyShape
from inrcore.shapespace.settings import DeepSdfSamplingConfig


@dataclass(frozen=True, eq=False)
class ShapeSpaceSamples:
    """points [M, 3] and sdf [M] (DeepSDF's samples); surface [S, 3] and normals [S, 3] (oriented
    surface points); occupancy_points [K, 3] uniform in the padded box and inside [K] bool.
    float32 arrays."""

    points: np.ndarray
    sdf: np.ndarray
    surface: np.ndarray
    normals: np.ndarray
    occupancy_points: np.ndarray
    inside: np.ndarray

    def counts(self) -> dict:
        return {"samples": int(len(self.points)), "inside": int((self.sdf < 0).sum()),
                "surface": int(len(self.surface)), "occupancy": int(len(self.occupancy_points)),
                "occupied": int(self.inside.sum())}


def split_counts(n_samples: int, near_fraction: float, scales: int) -> tuple[list[int], int]:
    """(near samples per perturbation scale, uniform samples): round(n · near_fraction) near points
    shared as evenly as possible among the scales, the rest uniform. 50 000 at 0.94 over two
    scales: ([23 500, 23 500], 3 000)."""
    near = int(round(n_samples * near_fraction))
    base, extra = divmod(near, scales)
    return [base + (1 if i < extra else 0) for i in range(scales)], n_samples - near


def sample_shape_space(mesh: trimesh.Trimesh, config: DeepSdfSamplingConfig) -> ShapeSpaceSamples:
    """DeepSDF and occupancy samples of a mesh already in the normalised frame.

    Near-surface points are area-weighted surface points moved by N(0, variance · I) for each of
    `config.variances` in turn (standard deviation sqrt(variance)); uniform points fill [-1, 1]^3;
    occupancy points fill [-(extent + padding), extent + padding]^3. The random streams come from
    `config.seed`.
    """
    rng = np.random.default_rng(config.seed)
    near_counts, n_uniform = split_counts(config.n_samples, config.near_fraction, len(config.variances))
    base, _ = sample_surface(mesh, sum(near_counts), rng)
    noise = np.concatenate([rng.normal(0.0, math.sqrt(v), size=(n, 3)) for v, n in zip(config.variances, near_counts)])
    uniform = rng.uniform(-1.0, 1.0, size=(n_uniform, 3))
    points = np.concatenate([base + noise, uniform])
    sdf, _ = signed_distance(mesh, points)
    surface, normals = sample_surface(mesh, config.n_surface, rng)
    half = config.extent + config.padding
    occupancy_points = rng.uniform(-half, half, size=(config.n_occupancy, 3))
    occupancy_sdf, _ = signed_distance(mesh, occupancy_points)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return ShapeSpaceSamples(f32(points), f32(sdf), f32(surface), f32(normals), f32(occupancy_points),
                             np.ascontiguousarray(occupancy_sdf < 0))


def load_normalised_mesh(path, extent: float) -> tuple[trimesh.Trimesh, Normalisation]:
    """Read a mesh file (`inrcore.geometry.meshes.load_mesh`, errors naming the file) and move it into
    the normalised frame."""
    mesh = load_mesh(path)
    try:
        moved, normalisation = normalise_mesh(mesh, extent)
    except ValueError as exc:
        raise ShapeError(path, str(exc)) from exc
    return moved, normalisation


def check_samples(samples: ShapeSpaceSamples, source) -> None:
    """Raise ShapeError naming `source` when the samples have no point inside or none outside (a flat
    or open sheet, a point cloud given where a closed mesh is needed)."""
    inside = int((samples.sdf < 0).sum())
    if inside == 0 or inside == len(samples.sdf):
        where = "inside" if inside == 0 else "outside"
        raise ShapeError(source, f"no sample point lies {where} the shape by its winding number: a shape space "
                                 "needs closed (or nearly closed) meshes")


def occupancy_shape(samples: ShapeSpaceSamples):
    """The Occupancy Network's training data of one shape (`inrcore.shapespace.occnet_training.OccupancyShape`):
    its surface points, the uniform occupancy points with their labels, and the DeepSDF samples as the
    near points, inside where their distance is negative."""
    return OccupancyShape(samples.surface, samples.occupancy_points, np.asarray(samples.inside, bool),
                          samples.points, np.asarray(samples.sdf) < 0)
