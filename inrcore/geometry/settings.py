"""Settings of the geometry stages: sampling a shape, the evaluation grid, surface metrics, pictures."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from inrcore.settings import (
    Count,
    CountOrZero,
    CountPair,
    Fraction,
    Integer,
    Number,
    Numbers,
    OpenFraction,
    PositiveNumber,
    SettingError,
    settings_class,
)


@settings_class
class SamplingConfig:
    """How a mesh becomes training samples.

    The shape is scaled so that its bounding box's longest side spans [-extent, extent]
    and centred at the origin. Off-surface points are Gaussian perturbations of surface
    points with each standard deviation in `near_sigmas` (n_near split evenly) plus
    `n_uniform` points uniform in [-1, 1]^3.
    """

    n_surface: Count = 50_000
    n_near: CountOrZero = 50_000
    near_sigmas: Numbers = (0.01, 0.1)
    n_uniform: CountOrZero = 20_000
    extent: Fraction = 0.9
    seed: Integer = 0

    def __post_init__(self):
        if self.n_near and not self.near_sigmas:
            raise SettingError("near_sigmas", "needs at least one value when n_near > 0")
        if any(s <= 0 for s in self.near_sigmas):
            raise SettingError("near_sigmas", f"must be positive, got {list(self.near_sigmas)}")


@settings_class
class GridConfig:
    """A dense grid of `resolution`^3 points spanning [-bound, bound]^3, stored in `chunk`^3 blocks."""

    resolution: Annotated[Integer, Field(ge=2)] = 128
    chunk: Count = 64
    bound: PositiveNumber = 1.0
    batch_points: Count = 65536


@settings_class
class MetricsConfig:
    """Surface metrics: `n_points` area-weighted samples per mesh, F-score at `fscore_ratio` x diagonal."""

    n_points: Count = 100_000
    fscore_ratio: OpenFraction = 0.01
    seed: Integer = 0


@settings_class
class ViewConfig:
    """A picture's camera and colour (`inrcore.geometry.render`): `size` (height, width) in pixels;
    an orthographic camera at (`azimuth_deg`, `elevation_deg`) looking at the origin, framed so
    that the cube [-bound, bound]^3 always fits; the surface's RGB `color` in [0, 1] under full light."""

    size: CountPair = (256, 256)
    azimuth_deg: Number = 35.0
    elevation_deg: Number = 25.0
    bound: PositiveNumber = 1.0
    color: Numbers = (0.75, 0.8, 0.9)
