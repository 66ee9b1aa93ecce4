"""Candidate skeletal balls and the surface samples they must cover, for both methods.

neural (Clémot & Digne 2023): the surface samples are iso-points of the fitted TV-regularised
field (projected onto its zero set and spread evenly), and the candidates are traced inward from
them (`inrcore.skeleton.tracing`).

coverage-axis (Dou et al. 2022): the surface samples are the input's own points, and the
candidates are points uniform in the box kept where the input's winding number exceeds a threshold.

Either way a candidate's radius is its distance to the nearest surface sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inrcore.fields.gradients import field_of_network
from inrcore.fields.networks import FieldSpec, Params
from inrcore.queries.isopoints import extract_isopoints
from inrcore.skeleton.inputs import SkeletonInput, winding_numbers
from inrcore.skeleton.settings import CandidatesConfig, TraceConfig
from inrcore.skeleton.tracing import radii_to_surface, trace_skeleton


@dataclass(frozen=True, eq=False)
class Candidates:
    """surface [S, 3]: the samples to cover; points [K, 3], radii [K]: the candidate balls; all float64
    in the normalised frame. considered: points examined before thinning or cutting (traces, or inner
    box points)."""

    surface: np.ndarray
    points: np.ndarray
    radii: np.ndarray
    considered: int


def surface_subset(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most n of points [P, 3], drawn without replacement (in their order) -> [min(n, P), 3]."""
    if len(points) <= n:
        return np.asarray(points, np.float64)
    pick = np.sort(np.random.default_rng(seed).choice(len(points), size=n, replace=False))
    return np.asarray(points[pick], np.float64)


def neural_candidates(spec: FieldSpec, params: Params, shape: SkeletonInput, config: TraceConfig,
                      device: torch.device | str = "cpu", bound: float = 1.0, seed: int = 0) -> Candidates:
    """Iso-points of the field (`n_surface`, started from as many input points) and the points traced from them.

    Args:
        spec, params: the fitted field (`inrcore.skeleton.tvfield.fit_skeleton_field`).
    """
    weights = {name: value.to(device) for name, value in params.items()}
    field = field_of_network(spec, weights)
    start = torch.as_tensor(surface_subset(shape.points, config.n_surface, seed), dtype=torch.float32, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    iso = extract_isopoints(field, config.n_surface, bound=bound, init=start, generator=generator)
    traced = trace_skeleton(field, iso.points, config, bound)
    return Candidates(iso.points.detach().cpu().double().numpy(), traced.points, traced.radii, traced.traced)


def coverage_axis_candidates(shape: SkeletonInput, trace: TraceConfig, config: CandidatesConfig,
                             bound: float = 1.0) -> Candidates:
    """The input's own points as surface samples (`trace.n_surface` of them), and `n_box` uniform box
    points with winding number above `winding_threshold` as candidates (at most `max_candidates`,
    drawn at random)."""
    rng = np.random.default_rng(config.seed)
    surface = surface_subset(shape.points, trace.n_surface, config.seed)
    box = rng.uniform(-bound, bound, (config.n_box, 3))
    inner = box[winding_numbers(shape, box) > config.winding_threshold]
    if len(inner) > config.max_candidates:
        inner = inner[np.sort(rng.choice(len(inner), size=config.max_candidates, replace=False))]
    return Candidates(surface, inner, radii_to_surface(inner, surface), int(len(box)))
