"""Spreading iso-points evenly over the level set and filling it up edge-aware (Wang Yifan et al. 2021).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from inrcore.fields.gradients import Field, values_and_gradients
from inrcore.queries.levelset import (
    IsoPoints,
    converged_points,
    nearest_neighbours,
    project_to_level_set,
    unit_vectors,
)


def spread_bandwidth(points: torch.Tensor) -> float:
    """The Gaussian bandwidth σ of the resampling weights exp(-d²/σ²): σ² = bbox diagonal / N
    (the authors' choice; about the mean spacing of N points on a surface of unit size)."""
    diagonal = float((points.max(0).values - points.min(0).values).norm())
    return math.sqrt(max(diagonal, 1e-12) / max(len(points), 1))


def repulsion_in_tangent_planes(points: torch.Tensor, normals: torch.Tensor, indices: torch.Tensor,
                                bandwidth: float) -> torch.Tensor:
    """The uniform-resampling move of each point: away from its neighbours, in its tangent plane.

    move_i = (1 + Σ_j w_ij) Σ_j w_ij t_ij / Σ_j w_ij, with t_ij = (p_i - p_j) less its component
    along n_i and w_ij = exp(-‖p_i - p_j‖² / σ²): the weighted mean push, larger where the
    sample is denser (Σ w larger). Its length is clamped at σ.

    points [N, 3], normals [N, 3] (unit), indices [N, K] -> move [N, 3] (to be added).
    """
    offsets = points[:, None, :] - points[indices]  # [N, K, 3]
    tangent = offsets - (offsets * normals[:, None, :]).sum(-1, keepdim=True) * normals[:, None, :]
    weights = torch.exp(-(offsets * offsets).sum(-1) / bandwidth ** 2)  # [N, K]
    total = weights.sum(-1, keepdim=True)
    move = (1.0 + total) * (weights[..., None] * tangent).sum(1) / total.clamp_min(1e-12)
    return clamp_length(move, bandwidth)


def clamp_length(vectors: torch.Tensor, max_length) -> torch.Tensor:
    """Vectors [..., 3] shortened to at most `max_length` (a number or a [..., 1] tensor)."""
    length = vectors.norm(dim=-1, keepdim=True)
    return vectors * torch.clamp(max_length / length.clamp_min(1e-30), max=1.0)


def resample_uniformly(field: Field, points: torch.Tensor, normals: torch.Tensor, iterations: int = 5,
                       neighbours: int = 16, projection_iterations: int = 3, tolerance: float = 5e-5,
                       max_step: float = 0.1, bandwidth: Optional[float] = None,
                       bound: Optional[float] = None) -> IsoPoints:
    """Even out the spacing of points on the level set: repulse in tangent planes, re-project.

    Each iteration moves every point by `repulsion_in_tangent_planes` over its `neighbours`
    nearest points and projects it back with `projection_iterations` Newton steps. Points that
    have not converged after the last projection are dropped.

    Args:
        field: points [N, 3] -> values [N, 1].
        points [N, 3], normals [N, 3]: points on (or near) the level set and unit normals.
        bandwidth: σ of the repulsion weights; None: `spread_bandwidth(points)`.
    Returns:
        IsoPoints [M <= N, 3].
    """
    if iterations <= 0 or len(points) <= 2:
        projection = project_to_level_set(field, points, projection_iterations, tolerance, max_step, bound)
        return converged_points(projection) if iterations > 0 else IsoPoints(points, normals)
    sigma = bandwidth if bandwidth is not None else spread_bandwidth(points)
    current, current_normals = points.detach(), unit_vectors(normals.detach())
    for _ in range(iterations):
        _, indices = nearest_neighbours(current, neighbours)
        moved = current + repulsion_in_tangent_planes(current, current_normals, indices, sigma)
        projection = project_to_level_set(field, moved, projection_iterations, tolerance, max_step, bound)
        current, current_normals = projection.points, projection.normals
    return converged_points(projection)


def normal_similarity_weights(normals: torch.Tensor, neighbour_normals: torch.Tensor,
                              sharpness_angle: float) -> torch.Tensor:
    """exp(-((1 - n_i·n_j) / (1 - cos θ))²): 1 for equal normals, small across an edge sharper than θ.

    normals [N, 3], neighbour_normals [N, K, 3], θ in degrees -> [N, K].
    """
    sigma = 1.0 - math.cos(math.radians(sharpness_angle))
    dissimilarity = 1.0 - (normals[:, None, :] * neighbour_normals).sum(-1)
    return torch.exp(-(dissimilarity / sigma) ** 2)


def edge_aware_move(points: torch.Tensor, normals: torch.Tensor, distances: torch.Tensor, indices: torch.Tensor,
                    repulsion: float, sharpness_angle: float) -> torch.Tensor:
    """The move of each point before insertion: towards neighbours with similar normals, away from dense areas.

    attraction_i = Σ_j a_ij (p_j - p_i) / Σ_j a_ij with a_ij = exp(-d²/σ²) · (normal similarity),
    so a point near an edge moves to the side whose normal it shares, leaving the edge to be
    filled by insertion; repulsion_i = μ (1 + Σ w) Σ_j w_ij (p_i - p_j) / Σ_j w_ij with
    w_ij = exp(-d²/σ²). σ² = 4 × the mean squared nearest-neighbour distance; each term's length
    is clamped at the root-mean-square nearest-neighbour distance.

    points [N, 3], normals [N, 3], distances [N, K], indices [N, K] -> move [N, 3] (to be added).
    """
    clip = distances[:, 0].pow(2).mean().sqrt()
    sigma2 = 4.0 * clip ** 2
    offsets = points[indices] - points[:, None, :]  # [N, K, 3]: towards the neighbours
    spatial = torch.exp(-distances ** 2 / sigma2.clamp_min(1e-20))
    attract = spatial * normal_similarity_weights(normals, normals[indices], sharpness_angle)
    attraction = (attract[..., None] * offsets).sum(1) / attract.sum(-1, keepdim=True).clamp_min(1e-12)
    total = spatial.sum(-1, keepdim=True)
    repulse = -repulsion * (1.0 + total) * (spatial[..., None] * offsets).sum(1) / total.clamp_min(1e-12)
    return clamp_length(attraction, clip) + clamp_length(repulse, clip)


def insertion_candidates(points: torch.Tensor, normals: torch.Tensor, indices: torch.Tensor,
                         edge_sensitivity: float, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each point, the best place to insert a new point next to it, and how much it is needed.

    Candidates are c_ij = (2 p_i + p_j) / 3 for each neighbour j. A candidate's gap is its
    distance to the nearest neighbour of i measured in that neighbour's tangent plane; its
    priority is (2 - n_i·n_j)^edge_sensitivity × gap, so gaps across edges come first.

    points [N, 3], normals [N, 3], indices [N, K] ->
        (candidates [N, 3], their priorities [N], partner neighbour j [N]).
    """
    best_points, best_priority, best_partner = [], [], []
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk]
        n = normals[start:start + chunk]
        idx = indices[start:start + chunk]
        nb, nb_normals = points[idx], normals[idx]  # [C, K, 3]
        mid = (2.0 * p[:, None, :] + nb) / 3.0  # [C, K, 3]
        to_nb = mid[:, :, None, :] - nb[:, None, :, :]  # [C, K(candidate), K(neighbour), 3]
        along = (to_nb * nb_normals[:, None, :, :]).sum(-1)
        tangential = ((to_nb * to_nb).sum(-1) - along ** 2).clamp_min(0.0).sqrt()  # [C, K, K]
        gap = tangential.min(dim=-1).values  # [C, K]
        crease = (2.0 - (n[:, None, :] * nb_normals).sum(-1)).clamp_min(0.0) ** edge_sensitivity
        priority, which = (crease * gap).max(dim=-1)
        best_points.append(mid[torch.arange(len(p), device=p.device), which])
        best_priority.append(priority)
        best_partner.append(idx[torch.arange(len(p), device=p.device), which])
    return torch.cat(best_points), torch.cat(best_priority), torch.cat(best_partner)


def upsample_edge_aware(field: Field, points: torch.Tensor, normals: torch.Tensor, n: int, neighbours: int = 16,
                        repulsion: float = 0.4, sharpness_angle: float = 20.0, edge_sensitivity: float = 1.0,
                        projection_iterations: int = 10, tolerance: float = 5e-5, max_step: float = 0.1,
                        bound: Optional[float] = None, max_rounds: int = 100) -> IsoPoints:
    """Edge-aware upsampling (after Huang et al. 2013, EAR) of points on the level set to about n points.

    1. Every point moves by `edge_aware_move` (attraction to neighbours with similar normals,
       repulsion from dense areas).
    2. Rounds of insertion: each point's best candidate (`insertion_candidates`) is ranked by
       priority and the top ones (at most a tenth of the current count per round) are added,
       with normals from the field, until there are n points.
    3. All points are projected with `projection_iterations` Newton steps; those that do not
       converge are dropped (so the result may have somewhat fewer than n points).

    Args:
        field: points [N, 3] -> values [N, 1].
        points [N, 3], normals [N, 3]: points on the level set and unit normals (N >= 2).
        n: the target count; when n <= N the points are only moved and re-projected.
    Returns:
        IsoPoints [M, 3], M <= max(n, N).
    """
    current, current_normals = points.detach(), unit_vectors(normals.detach())
    if len(current) >= 3:
        distances, indices = nearest_neighbours(current, neighbours)
        current = current + edge_aware_move(current, current_normals, distances, indices, repulsion, sharpness_angle)
        _, gradients = values_and_gradients(field, current)
        current_normals = unit_vectors(gradients)
        for _ in range(max_rounds):
            missing = n - len(current)
            if missing <= 0:
                break
            _, indices = nearest_neighbours(current, neighbours)
            candidates, priority, _ = insertion_candidates(current, current_normals, indices, edge_sensitivity)
            count = min(missing, max(1, len(current) // 10))
            chosen = priority.topk(count).indices
            added = candidates[chosen]
            _, added_gradients = values_and_gradients(field, added)
            current = torch.cat([current, added])
            current_normals = torch.cat([current_normals, unit_vectors(added_gradients)])
    projection = project_to_level_set(field, current, projection_iterations, tolerance, max_step, bound)
    return converged_points(projection)
