"""Settings of the queries: range-bound meshing, and ray casting (range-bound and sphere tracing)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from inrcore.settings import (
    Count,
    CountOrZero,
    Flag,
    Fraction,
    Integer,
    Number,
    OpenFraction,
    PositiveNumber,
    settings_class,
)


@settings_class
class RangeMeshConfig:
    """Range-bound meshing (`inrcore.queries.rangemesh`): marching cubes only where range analysis of the
    field cannot certify its sign, equal to dense marching cubes on a lattice of `resolution`^3
    points spanning [-bound, bound]^3.

    leaf: cells per edge of the smallest boxes bounded (and of the blocks then sampled).
    mode: "affine" or "interval" arithmetic; max_symbols: noise symbols kept per affine form
    (null keeps all: tightest, slowest). batch_boxes: boxes bounded at once.
    tasks: in the collection flow, the surviving leaf blocks are sampled by this many tasks
    spread over the Dask cluster.
    fallback: bound `samples` random boxes per level first and mesh densely (every lattice
    point) when range analysis is predicted to cost more (`inrcore.queries.rangemesh.estimate_range_mesh`).
    """

    resolution: Annotated[Integer, Field(ge=2)] = 256
    bound: PositiveNumber = 1.0
    leaf: Count = 8
    mode: Literal["affine", "interval"] = "affine"
    max_symbols: Optional[Annotated[Integer, Field(ge=0)]] = 8
    batch_boxes: Count = 4096
    batch_points: Count = 65536
    tasks: Count = 4
    fallback: Flag = True
    samples: Count = 256


@settings_class
class CastOptions:
    """Settings of range-bound casting (per ray and by frusta) and of sphere tracing.

    tolerance: minimum segment length in t; hits are located to tolerance / 2^bisections.
      Sphere tracing: a ray has hit when |f| < tolerance.
    max_steps: per ray: bound evaluations (range casting) or field evaluations (sphere
      tracing) before the ray gives up (it then reports no hit and counts as unfinished);
      frusta: marching rounds before the remaining tiles are split down to pixels.
    grow, shrink: step factors after a certified / an UNKNOWN segment.
    safety: a certified segment of length L moves the ray by safety * L.
    initial_step: the first step, as a fraction of the cube's diagonal 2 sqrt(3) bound.
    refine_width: a tile wider (at its current far depth) than refine_width * step is halved.
    tiles_per_side: the image starts as this many tiles along each side.
    bisections: bisection rounds locating a hit inside its last segment.
    mode, max_symbols: passed to `arithmetic.range_bound` ("affine" or "interval").
    batch_size: boxes per bound evaluation call (memory: affine forms grow with the width).
    step_scale: sphere tracing steps by step_scale * |f|.
    """

    tolerance: PositiveNumber = 1e-3
    max_steps: Count = 512
    grow: Annotated[Number, Field(ge=1)] = 1.5
    shrink: OpenFraction = 0.5
    safety: Fraction = 0.98
    initial_step: PositiveNumber = 0.1
    refine_width: PositiveNumber = 2.0
    tiles_per_side: Count = 16
    bisections: CountOrZero = 10
    mode: Literal["affine", "interval"] = "affine"
    max_symbols: Optional[Annotated[Integer, Field(ge=0)]] = None
    batch_size: Count = 1024
    step_scale: PositiveNumber = 1.0


@settings_class
class MiseConfig:
    """Meshing by MISE (`inrcore.queries.mise`, Mescheder et al. 2019): `start` cells per axis at
    first, refined `levels` times where the corners of a cell (or of a neighbouring cell) disagree
    about the sign, to the lattice of start * 2^levels cells over [-bound, bound]^3 (start * 2^levels + 1
    points per axis, those of dense marching cubes). batch_points: points evaluated at once.
    Not a certificate: a part thinner than a starting cell (2 * bound / start) may be missed.
    """

    start: Count = 32
    levels: CountOrZero = 2
    bound: PositiveNumber = 1.0
    batch_points: Count = 65536

    @property
    def resolution(self) -> int:
        """Cells per axis of the final lattice."""
        return self.start * 2 ** self.levels
