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
`inrcore.sdf.training.fit_sdf` uses them as extra surface data (`config.isopoints`), and
`bilateral_weights_from_isopoints` down-weights the data points they disagree with.

A field here is a callable `field(points [N, 3]) -> values [N, 1]` differentiable by autograd
(`field_of_network` makes one from a spec and parameters); every function works on the device
of the points it is given. Default numbers are those of the authors' code
(github.com/yifita/iso-points): 10 projection iterations, tolerance 5e-5, steps clamped at 0.1,
16 neighbours, 5 resampling iterations of 3 projections each, repulsion 0.4, sharpness angle 20°,
edge sensitivity 1.
"""

from __future__ import annotations

from typing import Optional

import torch

from inrcore.fields.gradients import Field
from inrcore.queries.isoresample import (
    normal_similarity_weights,
    resample_uniformly,
    spread_bandwidth,
    upsample_edge_aware,
)
from inrcore.queries.levelset import (
    IsoPoints,
    converged_points,
    nearest_neighbours,
    project_to_level_set,
    unit_vectors,
)


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
