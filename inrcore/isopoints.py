"""Iso-points: a point sample of a field's zero level set (Wang Yifan et al., CVPR 2021).

Iso-points are well-spread points on the current surface f(x) = 0 of an implicit field. They
are made in three steps, each a function here:

1. `project_to_level_set`: Newton steps q <- q - f(q) ∇f(q) / ‖∇f(q)‖², each step's length
   clamped, until |f(q)| is within a tolerance; points that do not get there are dropped.
2. `resample_uniformly`: each point is pushed away from its close neighbours within its tangent
   plane (more where the sample is dense), then projected again; this evens out the spacing.
3. `upsample_edge_aware`: points are pulled towards neighbours whose normals agree with theirs
   and pushed apart where dense, then new points are inserted where the sample is sparsest,
   first across edges (neighbours with differing normals), and all are projected again.

`extract_isopoints` chains them from a coarse grid's sign changes or from given points.
`inrcore.training.fit_sdf` uses them as extra surface data (`config.isopoints`), and
`bilateral_weights_from_isopoints` down-weights the data points they disagree with.

A field here is a callable `field(points [N, 3]) -> values [N, 1]` differentiable by autograd
(`field_of_network` makes one from a spec and parameters); every function works on the device
of the points it is given. Default numbers are those of the authors' code
(github.com/yifita/iso-points): 10 projection iterations, tolerance 5e-5, steps clamped at 0.1,
16 neighbours, 5 resampling iterations of 3 projections each, repulsion 0.4, sharpness angle 20°,
edge sensitivity 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .networks import FieldSpec, Params, evaluate_field

Field = Callable[[torch.Tensor], torch.Tensor]


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


def field_of_network(spec: FieldSpec, params: Params) -> Field:
    """The field of a network spec and its parameters as a callable: points [N, 3] -> values [N, 1].

    The parameters must live on the device of the points the callable is given.
    """
    def field(points: torch.Tensor) -> torch.Tensor:
        return evaluate_field(spec, params, points, create_graph=torch.is_grad_enabled())

    return field


def values_and_gradients(field: Field, points: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """f and ∇f at points, detached: [N, 3] -> (values [N], gradients [N, 3]), `chunk` points at a time.

    Works under torch.no_grad() too (gradients are switched on inside). A field that does not
    depend on its input has gradient zero.
    """
    values, gradients = [], []
    for part in points.split(chunk):
        with torch.enable_grad():
            x = part.detach().requires_grad_(True)
            v = field(x).reshape(-1)
            (g,) = torch.autograd.grad(v.sum(), x, allow_unused=True)
        values.append(v.detach())
        gradients.append(torch.zeros_like(x) if g is None else g.detach())
    if not values:
        return points.new_zeros(0), points.new_zeros(0, 3)
    return torch.cat(values), torch.cat(gradients)


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


def sign_change_points(field: Field, resolution: int, bound: float = 1.0, device=None,
                       chunk: int = 65536) -> torch.Tensor:
    """Where the field changes sign along the edges of a resolution³ grid over [-bound, bound]^3.

    Each grid edge whose end values differ in sign gives the zero of the linear interpolation
    between its ends. Returns [M, 3] on `device` (default CPU).
    """
    axis = torch.linspace(-bound, bound, resolution, device=device)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)  # [R, R, R, 3]
    with torch.no_grad():
        values = torch.cat([field(part).reshape(-1) for part in grid.reshape(-1, 3).split(chunk)])
    values = values.reshape(resolution, resolution, resolution)
    found = []
    for dim in range(3):
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[dim], high[dim] = slice(0, -1), slice(1, None)
        v0, v1 = values[tuple(low)], values[tuple(high)]
        crossing = (v0 < 0) != (v1 < 0)
        t = (v0 / (v0 - v1))[crossing].clamp(0.0, 1.0)[:, None]
        x0, x1 = grid[tuple(low)][crossing], grid[tuple(high)][crossing]
        found.append(x0 + t * (x1 - x0))
    return torch.cat(found)


def extract_isopoints(field: Field, n: int, bound: float = 1.0, init: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None, grid_resolution: int = 64,
                      resample_iterations: int = 5, neighbours: int = 16, upsample: bool = True,
                      max_iterations: int = 10, tolerance: float = 5e-5, max_step: float = 0.1,
                      device=None) -> IsoPoints:
    """About n iso-points of a field: start, project, resample uniformly, upsample edge-aware.

    Start points are `init` [P, 3] when given, else the sign changes of a `grid_resolution`³ grid
    over [-bound, bound]^3 (`sign_change_points`); more than n of them are cut to a random n
    (with `generator`). They are projected (`project_to_level_set`, dropping what does not
    converge or leaves the bound), resampled (`resample_uniformly`), and, when fewer than n
    remain and `upsample`, filled up to n (`upsample_edge_aware`).

    Returns:
        IsoPoints [M, 3] with unit normals ∇f/‖∇f‖, on the device of `init` (or `device`);
        M is about n, fewer when few points converge, zero when the field has no surface there.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    start = init.detach() if init is not None else sign_change_points(field, grid_resolution, bound, device)
    if len(start) > n:
        pick = torch.randperm(len(start), generator=generator, device=generator.device if generator else "cpu")[:n]
        start = start[pick.to(start.device)]
    iso = converged_points(project_to_level_set(field, start, max_iterations, tolerance, max_step, bound))
    if len(iso) > 2 and resample_iterations > 0:
        iso = resample_uniformly(field, iso.points, iso.normals, resample_iterations, neighbours,
                                 tolerance=tolerance, max_step=max_step, bound=bound)
    if upsample and 2 < len(iso) < n:
        iso = upsample_edge_aware(field, iso.points, iso.normals, n, neighbours, tolerance=tolerance,
                                  max_step=max_step, bound=bound, projection_iterations=max_iterations)
    return iso


def normals_from_neighbours(points: torch.Tensor, reference_normals: torch.Tensor, k: int = 8) -> torch.Tensor:
    """Normals estimated from the point sample itself: the least-variance direction (PCA) of each
    point and its k nearest neighbours, turned to agree with `reference_normals`.

    points [N, 3], reference_normals [N, 3] -> unit normals [N, 3] (the reference where N <= 3).
    """
    if len(points) <= 3:
        return unit_vectors(reference_normals)
    _, indices = nearest_neighbours(points, k)
    patch = torch.cat([points[:, None, :], points[indices]], dim=1)  # [N, k+1, 3]
    centred = patch - patch.mean(1, keepdim=True)
    covariance = centred.transpose(1, 2) @ centred  # [N, 3, 3]
    _, vectors = torch.linalg.eigh(covariance)
    normals = vectors[:, :, 0]
    flip = (normals * reference_normals).sum(-1, keepdim=True) < 0
    return torch.where(flip, -normals, normals)


def nearest_of(queries: torch.Tensor, points: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's nearest point, by brute force in row chunks.

    queries [N, 3], points [M >= 1, 3] -> (distances [N], indices [N] into points).
    """
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        nearest = torch.cdist(queries[start:start + chunk], points).min(dim=1)
        distances.append(nearest.values)
        indices.append(nearest.indices)
    if not distances:
        return queries.new_zeros(0), torch.zeros(0, dtype=torch.long, device=queries.device)
    return torch.cat(distances), torch.cat(indices)


def bilateral_weights_from_isopoints(points: torch.Tensor, normals: torch.Tensor, iso_points: torch.Tensor,
                                     iso_normals: torch.Tensor, sharpness_angle: float = 60.0,
                                     radius: float = 0.1, bandwidth: Optional[float] = None) -> torch.Tensor:
    """Per-point weights that discount data points the current surface disagrees with (outliers, noise).

    For each data point p with normal n_p and its nearest iso-point q with normal n_q:
    w = exp(-((p - q)·n_q)² / σ²) · exp(-((1 - n_p·n_q) / (1 - cos θ))²), the distance of p to
    the tangent plane at q and the angle between the normals, as in the bilateral weights of the
    iso-points paper's point-cloud experiment (θ = 60°). w = 0 where no iso-point lies within
    `radius`. σ defaults to 4 × `spread_bandwidth(iso_points)` (the authors' σ² = 16 × diameter / M
    for M iso-points: a few spacings of the iso-point sample).

    points [N, 3], normals [N, 3], iso_points [M, 3], iso_normals [M, 3] (any length; normalised
    here) -> weights [N] in [0, 1]; all ones when M = 0.
    """
    if len(iso_points) == 0:
        return points.new_ones(len(points))
    sigma = bandwidth if bandwidth is not None else 4.0 * spread_bandwidth(iso_points)
    distances, nearest = nearest_of(points, iso_points)
    n_q = unit_vectors(iso_normals)[nearest]
    plane_distance = ((points - iso_points[nearest]) * n_q).sum(-1)
    spatial = torch.exp(-(plane_distance / sigma) ** 2)
    angular = normal_similarity_weights(unit_vectors(normals), n_q[:, None, :], sharpness_angle)[:, 0]
    return torch.where(distances <= radius, spatial * angular, torch.zeros_like(spatial))


def isopoints_due(step: int, progress: float, last_refresh: Optional[int], warmup: float, refresh_every: int) -> bool:
    """Whether a training loop refreshes its iso-points before `step`: once progress reaches
    `warmup` (a fraction of the run), then every `refresh_every` steps after the last refresh."""
    if progress < warmup:
        return False
    return last_refresh is None or step - last_refresh >= refresh_every


def jittered(points: torch.Tensor, amount: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """points [N, 3] plus independent uniform noise in [-amount, amount] on each coordinate."""
    noise = torch.rand(points.shape, generator=generator, device=points.device, dtype=points.dtype)
    return points + (2.0 * noise - 1.0) * amount
