"""Settings of the queries: range-bound meshing."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from inrcore.settings import Count, Flag, Integer, PositiveNumber, settings_class


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
