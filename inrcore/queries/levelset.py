"""Points on a field's zero level set: Newton projection along the gradient, and their neighbourhoods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from inrcore.fields.gradients import Field, values_and_gradients


@dataclass
class Projection:
    """The result of `project_to_level_set`, one row per input point.

    points [N, 3]: where each point ended; normals [N, 3]: ∇f/‖∇f‖ there (zero where ∇f = 0);
    values [N]: f there; converged [N] bool: |f| <= tolerance with a non-zero, finite gradient
    (and inside the bound when one was given). Rows with converged False are to be dropped.
    """

    points: torch.Tensor
    normals: torch.Tensor
    values: torch.Tensor
    converged: torch.Tensor


@dataclass
class IsoPoints:
    """Points [M, 3] on a field's zero level set and their unit normals [M, 3] (∇f/‖∇f‖)."""

    points: torch.Tensor
    normals: torch.Tensor

    def __len__(self) -> int:
        return len(self.points)


def unit_vectors(vectors: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """v / ‖v‖ along the last axis, zero where ‖v‖ <= eps: [..., 3] -> [..., 3]."""
    length = vectors.norm(dim=-1, keepdim=True)
    return torch.where(length > eps, vectors / length.clamp_min(eps), torch.zeros_like(vectors))


def newton_step(values: torch.Tensor, gradients: torch.Tensor, max_step: float) -> torch.Tensor:
    """The displacement f ∇f / ‖∇f‖² (to be subtracted), its length clamped at `max_step`.

    values [N], gradients [N, 3] -> [N, 3]. Where ∇f = 0 the step is zero (the point stays).
    """
    squared = (gradients * gradients).sum(-1, keepdim=True)  # [N, 1]
    step = values[:, None] * gradients / squared.clamp_min(1e-20)
    step = torch.where(squared > 0, step, torch.zeros_like(step))
    length = step.norm(dim=-1, keepdim=True)
    scale = torch.clamp(max_step / length.clamp_min(1e-30), max=1.0)
    return torch.nan_to_num(step * scale)


def project_to_level_set(field: Field, points: torch.Tensor, max_iterations: int = 10, tolerance: float = 5e-5,
                         max_step: float = 0.1, bound: Optional[float] = None, chunk: int = 65536) -> Projection:
    """Newton projection of points onto the zero level set: q <- q - f ∇f / ‖∇f‖², clamped.

    Each point takes at most `max_iterations` steps, each at most `max_step` long, and stops
    once |f(q)| <= tolerance. All points come back (see `Projection`); `converged` marks those
    to keep: |f| within tolerance, a non-zero finite gradient, and, when `bound` is given,
    inside [-bound, bound]^3. `converged_points` keeps only those.

    Args:
        field: points [N, 3] -> values [N, 1].
        points [N, 3]: starting points (not modified).
    Returns:
        Projection with points, normals, values [N] and converged [N].
    """
    if max_iterations < 0 or tolerance <= 0 or max_step <= 0:
        raise ValueError(f"need max_iterations >= 0, tolerance > 0, max_step > 0; got {max_iterations}, "
                         f"{tolerance}, {max_step}")
    current = points.detach().clone()
    values = current.new_zeros(len(current))
    gradients = torch.zeros_like(current)
    active = torch.ones(len(current), dtype=torch.bool, device=current.device)
    for iteration in range(max_iterations + 1):
        index = active.nonzero().squeeze(1)
        v, g = values_and_gradients(field, current[index], chunk)
        values[index], gradients[index] = v, g
        done = v.abs() <= tolerance
        active[index[done]] = False
        if iteration == max_iterations or not active.any():
            break
        moving = index[~done]
        current[moving] = current[moving] - newton_step(v[~done], g[~done], max_step)
    length = gradients.norm(dim=-1)
    converged = (values.abs() <= tolerance) & (length > 1e-12) & torch.isfinite(length) & torch.isfinite(current).all(-1)
    if bound is not None:
        converged &= (current.abs() <= bound).all(-1)
    return Projection(points=current, normals=unit_vectors(gradients), values=values, converged=converged)


def converged_points(projection: Projection) -> IsoPoints:
    """The rows of a projection that converged, as IsoPoints [M, 3] with their normals."""
    keep = projection.converged
    return IsoPoints(points=projection.points[keep], normals=projection.normals[keep])


def nearest_neighbours(points: torch.Tensor, k: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point's k nearest other points (itself excluded), by brute force in row chunks.

    points [N, 3] -> (distances [N, k'], indices [N, k']), nearest first, k' = min(k, N - 1).
    """
    n = len(points)
    k = min(k, n - 1)
    if k <= 0:
        return points.new_zeros(n, 0), torch.zeros(n, 0, dtype=torch.long, device=points.device)
    distances, indices = [], []
    for start in range(0, n, chunk):
        rows = points[start:start + chunk]
        d = torch.cdist(rows, points)  # [C, N]
        own = torch.arange(start, start + len(rows), device=points.device)
        d[torch.arange(len(rows), device=points.device), own] = math.inf
        nearest = d.topk(k, dim=1, largest=False)
        distances.append(nearest.values)
        indices.append(nearest.indices)
    return torch.cat(distances), torch.cat(indices)
