"""Settings of SDF fitting (loss, iso-points, the training loop) and of the shape-collection flow."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional, Union

from pydantic import Field

from inrcore.fields.settings import NetworkConfig
from inrcore.geometry.settings import GridConfig, MetricsConfig, SamplingConfig
from inrcore.queries.settings import RangeMeshConfig
from inrcore.settings import (Count, CountOrZero, DeviceName, ExecutionOnly, Flag, Fraction, Integer, Number,
                              PositiveNumber, RegistryAlias, interval, settings_class)


@settings_class
class LossConfig:
    """Weights of the SIREN SDF loss (Sitzmann et al. 2020, their defaults).

    surface: |u| on surface points; normal: 1 - cos(grad u, n) on surface points;
    eikonal: (|grad u| - 1)^2 everywhere; offsurface: exp(-alpha |u|) on points off the
    surface: the fresh uniform points, and the stored off-surface samples whose true
    distance exceeds `offsurface_margin` (so the term never pulls against the surface).
    sdf: weight of a clamped L1 term |clamp(u) - clamp(d)| (DeepSDF's, clamp at
    `sdf_clamp`) on stored off-surface samples with true distance d, available when fitting
    meshes rather than bare point clouds; 0 gives the SIREN loss alone. Without it, short CPU
    fits leave interior shells where the field turns positive inside the body (measured in
    BENCHMARKS.md: bunny Chamfer-L1 0.0148 without, 0.0027 with).
    """

    surface: Number = 3000.0
    normal: Number = 100.0
    eikonal: Number = 50.0
    offsurface: Number = 100.0
    alpha: Number = 100.0
    offsurface_margin: Number = 0.03
    sdf: Number = 1000.0
    sdf_clamp: Number = 0.5
    igr_tau: Number = 1.0
    igr_lambda: Number = 0.1
    igr_neighbours: Integer = 50


Warmup = interval(0.0, 1.0, "[)", " (a fraction of the run)")
Angle = interval(0.0, 180.0, "(]", " degrees")


@settings_class
class IsoPointsConfig:
    """Iso-points as extra surface data while fitting (Wang Yifan et al. 2021, `inrcore.queries.isopoints`).

    When `enabled`, once training progress reaches `warmup` (a fraction of the run) and then
    every `refresh_every` steps, about `n_points` points are extracted on the current zero
    level set: the first time from the surface data points, later from the previous iso-points
    moved by uniform noise in [-jitter, jitter]^3; each time projected (`max_iterations` Newton
    steps clamped at `max_step`, kept when |f| <= `tolerance`), resampled uniformly
    (`resample_iterations` rounds over `neighbours` neighbours) and, when `upsample`, filled up
    edge-aware. A `batch_share` of each step's surface batch is then drawn from them instead of
    the data, as oriented surface points with normals from the field's gradient (`normals`
    "field") or from their own neighbourhoods (PCA of 8 neighbours turned to agree with the
    gradient, "estimated", as the authors' point-cloud experiment does). With `bilateral`, each
    data point's surface terms are weighted by its agreement with the nearest iso-point
    (`bilateral_weights_from_isopoints`: distance to its tangent plane, and normals within about
    `bilateral_angle` degrees; 0 beyond `bilateral_radius`), so outliers and badly oriented
    points pull less. Defaults from the authors' code (github.com/yifita/iso-points) where it
    has one (their point-cloud experiment: estimated normals, bilateral weights); warmup,
    refresh_every and batch_share are chosen for this project's short fits. BENCHMARKS.md
    ("Iso-points on sparse, noisy and outlier-ridden point clouds") measures the choices.
    """

    enabled: Flag = False
    n_points: Count = 5000
    warmup: Warmup = 0.25
    refresh_every: Annotated[Integer, Field(ge=1)] = 250
    batch_share: Fraction = 0.5
    jitter: Annotated[Number, Field(ge=0)] = 0.05
    resample_iterations: CountOrZero = 5
    neighbours: Annotated[Integer, Field(ge=3)] = 16
    upsample: Flag = True
    normals: Literal["field", "estimated"] = "estimated"
    max_iterations: Annotated[Integer, Field(ge=1)] = 10
    tolerance: PositiveNumber = 5e-5
    max_step: PositiveNumber = 0.1
    bilateral: Flag = True
    bilateral_angle: Angle = 60.0
    bilateral_radius: PositiveNumber = 0.1

    def counts_in_results(self) -> bool:
        """Switched off, iso-points change nothing (and fingerprints stay those of configs without them)."""
        return self.enabled


@settings_class
class TrainConfig:
    """The fitting loop. `seconds`, when set, caps the wall time; `steps` always caps steps.

    shapes_per_batch > 1 trains that many shapes of a collection together in one process
    with stacked weights (`inrcore.sdf.batched.fit_sdf_batch`): each shape's fit is the one it
    would get alone (same initialisation, samples and optimiser steps, up to rounding), in
    less time per shape. `seconds` then caps the wall time of the whole batch. "auto" packs as many
    as fit in the training device's free memory (`inrcore.sdf.batched.shape_step_bytes`), on a GPU;
    on the CPU, where stacking does not pay, shapes train one by one.

    `isopoints` (off by default) adds iso-points of the current field to the surface data
    (`IsoPointsConfig`); such fits train shape by shape, never stacked.
    """

    steps: Count = 2000
    seconds: Optional[PositiveNumber] = None
    batch_surface: Count = 2048
    batch_offsurface: CountOrZero = 2048
    batch_uniform: CountOrZero = 2048
    lr: PositiveNumber = 2e-4
    lr_final: PositiveNumber = 2e-5
    seed: Integer = 0
    device: DeviceName = "auto"
    log_every: Count = 50
    shapes_per_batch: Annotated[Union[Count, Literal["auto"]], ExecutionOnly] = 1
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    isopoints: IsoPointsConfig = dataclasses.field(default_factory=IsoPointsConfig)


@settings_class
class QueriesConfig:
    """Query stages of the collection flow after a shape's field is fitted and meshed.

    isopoints: iso-points extracted per shape and stored in Zarr (0: no iso-point stage).
    range_mesh: also mesh each field by range analysis (`range`), into `meshes/<id>-range.ply`.
    """

    isopoints: CountOrZero = 0
    range_mesh: Flag = False
    range: RangeMeshConfig = dataclasses.field(default_factory=RangeMeshConfig)


@settings_class
class PipelineConfig:
    """Everything the shape-collection pipeline needs besides where things are stored."""

    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    training: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    grid: GridConfig = dataclasses.field(default_factory=GridConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    queries: QueriesConfig = dataclasses.field(default_factory=QueriesConfig)
    alias: RegistryAlias = "champion"
