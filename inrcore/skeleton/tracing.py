"""Skeletal points traced inward from the zero set of a distance field (Clémot & Digne 2023).

From each surface sample s with outward unit normal n = ∇u/‖∇u‖, the segment s − t·n,
t in (0, march_length], is sampled; it is cut at its first sample outside the shape (u > 0) or
outside the box, and the part kept is sampled again, finer, twice (around the best point the
second time). The point kept is the one of smallest ‖∇u‖: a distance function's gradient has
norm 1 except on the medial axis, where a TV-regularised neural field's dips and an exact
distance function's jumps. ‖∇u‖ is measured by central differences over the current sample
spacing, so that both show: an exact field's kink is seen within one spacing of the axis.

Radii are the distances from the skeletal points to the nearest surface sample; points not
inside the shape (u ≥ 0) are dropped, and near-duplicates thinned with a KD-tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from inrcore.fields.gradients import values_and_gradients
from inrcore.geometry.metrics import nearest_neighbours
from inrcore.skeleton.settings import TraceConfig


Field = Callable[[torch.Tensor], torch.Tensor]  # points [N, 3] -> values [N, 1] (or [N])


@dataclass(frozen=True)
class TracedPoints:
    """Skeletal candidates: points [K, 3] and radii [K] (distance to the nearest surface sample),
    with `traced` the number of surface samples whose trace gave a point before thinning."""

    points: np.ndarray
    radii: np.ndarray
    traced: int


def values_of(field: Field, points: torch.Tensor, batch: int) -> torch.Tensor:
    """u at points [N, 3] -> [N], `batch` points at a time, without gradients."""
    with torch.no_grad():
        return torch.cat([field(part).reshape(-1) for part in points.split(batch)]) if len(points) else \
            points.new_zeros(0)


def difference_gradient_norms(field: Field, points: torch.Tensor, step: torch.Tensor, batch: int) -> torch.Tensor:
    """‖∇u‖ by central differences: points [N, 3], per-point steps h [N] -> [N].

    Each axis' derivative is (u(x + h e_k) − u(x − h e_k)) / 2h.
    """
    offsets = torch.cat([torch.eye(3, device=points.device, dtype=points.dtype),
                         -torch.eye(3, device=points.device, dtype=points.dtype)])  # [6, 3]
    probes = points[:, None, :] + step[:, None, None] * offsets[None]  # [N, 6, 3]
    values = values_of(field, probes.reshape(-1, 3), batch).reshape(-1, 6)
    derivative = (values[:, :3] - values[:, 3:]) / (2.0 * step[:, None])
    return derivative.norm(dim=-1)


def inward_extents(field: Field, starts: torch.Tensor, directions: torch.Tensor, config: TraceConfig,
                   bound: float) -> torch.Tensor:
    """How far each inward segment stays inside: starts [N, 3], unit directions [N, 3] -> t_cut [N].

    The segment's `march_samples` points t_k = k·march_length/march_samples (k = 1..) are tested;
    t_cut is the first t_k with u > 0 or outside [-bound, bound]^3, or march_length if none.
    """
    steps = torch.arange(1, config.march_samples + 1, device=starts.device, dtype=starts.dtype)
    t = steps * (config.march_length / config.march_samples)  # [M]
    samples = starts[:, None, :] - t[None, :, None] * directions[:, None, :]  # [N, M, 3]
    values = values_of(field, samples.reshape(-1, 3), config.batch).reshape(len(starts), -1)
    outside = (values > 0) | (samples.abs() > bound).any(dim=-1)
    last = torch.full((len(starts),), len(t) - 1, device=starts.device, dtype=torch.long)
    first = torch.where(outside.any(dim=1), outside.float().argmax(dim=1), last)
    return t[first]


def smallest_gradient_along(field: Field, starts: torch.Tensor, directions: torch.Tensor, low: torch.Tensor,
                            high: torch.Tensor, samples: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample of smallest ‖∇u‖ on each segment s − t·d, t in [low, high] (`samples` points each).

    Args:
        starts, directions [N, 3]; low, high [N].
    Returns:
        t [N] of the best sample (ties: the first, nearest the surface) and the spacing [N].
    """
    fraction = torch.linspace(0.0, 1.0, samples, device=starts.device, dtype=starts.dtype)
    t = low[:, None] + (high - low)[:, None] * fraction[None]  # [N, R]
    spacing = ((high - low) / (samples - 1)).clamp(min=1e-6)
    points = starts[:, None, :] - t[..., None] * directions[:, None, :]
    norms = difference_gradient_norms(field, points.reshape(-1, 3), spacing.repeat_interleave(samples), batch)
    best = norms.reshape(len(starts), samples).argmin(dim=1)
    return t.gather(1, best[:, None])[:, 0], spacing


def trace_skeleton(field: Field, surface: torch.Tensor, config: TraceConfig, bound: float = 1.0) -> TracedPoints:
    """Skeletal points of a field from surface samples on its zero set (see the module docstring).

    Args:
        field: points [N, 3] -> u [N, 1], negative inside, on the device of `surface`.
        surface: surface samples [S, 3] (on the zero set, e.g. `extract_isopoints`).
    Returns:
        TracedPoints, thinned within `thin_radius`, radii to the nearest surface sample.
    """
    if len(surface) == 0:
        return TracedPoints(np.zeros((0, 3)), np.zeros(0), 0)
    _, gradients = values_and_gradients(field, surface, config.batch)
    norms = gradients.norm(dim=-1, keepdim=True)
    usable = norms[:, 0] > 1e-8
    starts, directions = surface[usable], gradients[usable] / norms[usable]
    cut = inward_extents(field, starts, directions, config, bound)
    zero = torch.zeros_like(cut)
    t, spacing = smallest_gradient_along(field, starts, directions, zero, cut, config.refine_samples, config.batch)
    t, _ = smallest_gradient_along(field, starts, directions, (t - spacing).clamp(min=0.0),
                                   torch.minimum(t + spacing, cut), config.refine_samples, config.batch)
    points = starts - t[:, None] * directions
    inside = (values_of(field, points, config.batch) < 0) & (points.abs() <= bound).all(dim=-1)
    kept = points[inside].detach().cpu().double().numpy()
    thinned = kept[thinned_indices(kept, config.thin_radius)]
    return TracedPoints(thinned, radii_to_surface(thinned, surface.detach().cpu().double().numpy()), len(kept))


def thinned_indices(points: np.ndarray, radius: float) -> np.ndarray:
    """Indices of points [N, 3] kept when every point closer than `radius` to an earlier kept one is
    dropped (greedy in order; a KD-tree gives each point's neighbours, so no quadratic loop)."""
    if radius <= 0 or len(points) < 2:
        return np.arange(len(points))
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    pairs = tree.query_pairs(radius, output_type="ndarray")  # [P, 2], i < j
    if len(pairs) == 0:
        return np.arange(len(points))
    order = np.argsort(pairs[:, 0], kind="stable")
    pairs = pairs[order]
    starts = np.searchsorted(pairs[:, 0], np.arange(len(points) + 1))
    dropped = np.zeros(len(points), dtype=bool)
    for i in range(len(points)):
        if not dropped[i]:
            dropped[pairs[starts[i]:starts[i + 1], 1]] = True
    return np.flatnonzero(~dropped)


def radii_to_surface(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Distance from each point [K, 3] to the nearest surface sample [S, 3] -> [K]."""
    if len(points) == 0:
        return np.zeros(0)
    return nearest_neighbours(points, surface)[0]
