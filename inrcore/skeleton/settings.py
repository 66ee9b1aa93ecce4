"""Settings of skeletonisation: the TV-regularised field, tracing, Coverage-Axis selection and linking.

Lengths (`delta`, `thin_radius`, `march_length`) are in the normalised frame every shape is moved to
first: the bounding box centred at the origin, its longest side spanning [-extent, extent]
(`SamplingConfig.extent`, 0.9 by default), so a shape's bounding-box diagonal is between 1.8 and
3.1 units there.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

from pydantic import Field

from inrcore.fields.settings import NetworkConfig
from inrcore.sdf.settings import PipelineConfig
from inrcore.settings import (
    Count,
    CountOrZero,
    DeviceName,
    Flag,
    Fraction,
    Integer,
    Number,
    PositiveNumber,
    settings_class,
)


def _skeleton_network() -> NetworkConfig:
    return NetworkConfig(kind="siren", width=64, layers=4, omega_first=30.0, omega_hidden=30.0)


@settings_class
class SkeletonFieldConfig:
    """The TV-regularised neural SDF (Clémot & Digne 2023) fitted to oriented surface points.

    Loss: eikonal·(‖∇u‖ − 1)² at box points; surface·(surface_value·u² + (1 − cos(∇u, n))) at
    surface points; learning·(learning_value·(u − d)² + (1 − cos(∇u, ∇d))) at `n_learning`
    uniform points while progress < `learning_until`, with d the distance to the nearest input
    point signed by that point's normal; tv·decay·mean ‖∇‖∇u‖‖ at the box points, with
    decay = 1/(1 + (progress·tv_decay_epochs/10)²), the authors' schedule over their 50 outer
    iterations when tv_decay_epochs is 50.

    The network starts as the signed distance of a sphere of `start_radius` (`start_steps` steps of
    regression, as the authors' pre-trained start). The authors' weights are kept (surface 100 with
    the value term ×100, eikonal 200, learning 100 with ×10, TV 20). Their optimiser (L-BFGS, 50
    outer iterations of 25k + 25k points on a 6×64 SIREN) is too slow for two CPU cores; the
    defaults here (Adam, `steps` steps of `batch_box` + `batch_surface` points on a 4×64 SIREN)
    were chosen in BENCHMARKS.md ("Neural skeletons") to fit the three-minute budget per shape.
    """

    network: NetworkConfig = dataclasses.field(default_factory=_skeleton_network)
    steps: Count = 800
    seconds: Optional[PositiveNumber] = None
    batch_box: Count = 2048
    batch_surface: Count = 2048
    lr: PositiveNumber = 1e-4
    lr_final: PositiveNumber = 1e-5
    surface: Number = 100.0
    surface_value: Number = 100.0
    eikonal: Number = 200.0
    learning: Number = 100.0
    learning_value: Number = 10.0
    n_learning: CountOrZero = 10_000
    learning_until: Fraction = 0.4
    tv: Number = 20.0
    tv_decay_epochs: Annotated[Number, Field(ge=0)] = 50.0
    start_radius: PositiveNumber = 0.5
    start_steps: CountOrZero = 300
    seed: Integer = 0
    log_every: Count = 50


@settings_class
class TraceConfig:
    """Tracing skeletal points inward from the zero set (`inrcore.skeleton.tracing`).

    n_surface: surface samples, projected onto the field's zero set and spread evenly (iso-points).
    march_length, march_samples: each sample's inward segment along −∇u and its sample count;
    the part up to the first sample outside the shape is resampled with `refine_samples` points
    and the point of smallest ‖∇u‖ kept. thin_radius: skeletal points closer than this to a kept
    one are dropped.
    """

    n_surface: Count = 2000
    march_length: PositiveNumber = 1.0
    march_samples: Annotated[Integer, Field(ge=2)] = 50
    refine_samples: Annotated[Integer, Field(ge=2)] = 50
    thin_radius: Annotated[Number, Field(ge=0)] = 0.01
    batch: Count = 4096


@settings_class
class CoverConfig:
    """Coverage-Axis selection (Dou et al. 2022): the fewest balls, each dilated by `delta`, covering
    every surface sample, by `scipy.optimize.milp` (HiGHS) with a `time_limit` in seconds and a
    relative gap `mip_gap`; a greedy cover when the solver stops without a solution.

    The neural-skeleton authors use a gap of 0.1. 0.05 here: on the box's 1,925 traced candidates
    a gap of 0.01 took 14.3 s and 0.05 took 1.6 s for the same 186 balls (BENCHMARKS.md).
    """

    delta: PositiveNumber = 0.03
    time_limit: PositiveNumber = 30.0
    mip_gap: Annotated[Number, Field(ge=0)] = 0.05
    presolve: Flag = True


@settings_class
class CandidatesConfig:
    """Coverage Axis on the raw input: `n_candidates` points uniform in the box kept where the
    input's winding number exceeds `winding_threshold` (Dou et al.: 0.5), at most `max_candidates`."""

    n_box: Count = 50_000
    max_candidates: Count = 5000
    winding_threshold: Fraction = 0.5
    seed: Integer = 0


@settings_class
class SkeletonConfig:
    """One shape's skeleton: `method` "neural" (a TV-regularised field, traced) or "coverage-axis"
    (candidates from the input by winding number), then the same selection and linking."""

    method: Literal["neural", "coverage-axis"] = "neural"
    n_input: Count = 20_000
    extent: Fraction = 0.9
    field: SkeletonFieldConfig = dataclasses.field(default_factory=SkeletonFieldConfig)
    trace: TraceConfig = dataclasses.field(default_factory=TraceConfig)
    candidates: CandidatesConfig = dataclasses.field(default_factory=CandidatesConfig)
    cover: CoverConfig = dataclasses.field(default_factory=CoverConfig)
    device: DeviceName = "auto"


@settings_class
class SkeletonStageConfig(SkeletonConfig):
    """The skeleton stage of the collection flow: off unless `enabled`."""

    enabled: Flag = False

    def counts_in_results(self) -> bool:
        return self.enabled


@settings_class
class CollectionConfig(PipelineConfig):
    """The shape-collection flow's settings: `PipelineConfig` and the skeleton stage (`skeleton`)."""

    skeleton: SkeletonStageConfig = dataclasses.field(default_factory=SkeletonStageConfig)
