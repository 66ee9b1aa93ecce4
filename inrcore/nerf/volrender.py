"""Volume rendering along rays (NeRF, Mildenhall et al. 2020), in the style of nerfacc; torch only.

A ray is cut into intervals [t_start, t_end] (distances along its unit direction), each with a
density sigma >= 0 (and, for colour, a value such as RGB) that is taken as constant over the
interval. The optical thickness of interval i is sigma_i delta_i with delta_i = t_end - t_start,
its opacity alpha_i = 1 - exp(-sigma_i delta_i), the transmittance up to it
T_i = exp(-sum_{j<i} sigma_j delta_j) = prod_{j<i} (1 - alpha_j), and its weight w_i = T_i alpha_i.
A ray's colour is sum_i w_i c_i, its opacity sum_i w_i (<= 1), and on a background b the pixel
is colour + (1 - opacity) b.

Two layouts:
- padded: [R, S] tensors, R rays with S samples each, sorted by t along each ray;
- packed: flat [P] samples plus `ray_indices` [P] (long, non-decreasing: the samples of one ray
  are contiguous and sorted by t) and `n_rays`; rays may have any number of samples, zero too.

Transmittance comes from an exclusive cumulative sum of the optical thickness (not a product
of 1 - alpha), which keeps gradients well defined when some alpha is 1. In the packed layout the
cumulative sum runs over the whole flat array in float64 with each ray's start offset
subtracted (clamped at 0), and each sigma_i delta_i is first clamped to 1e3 (exp(-1e3) is 0 in float64, so
values and gradients are unchanged) so that an infinite density cannot poison later rays.

Every function works on the device and float dtype of its inputs and is differentiable with
respect to the densities and values.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor


# sigma * delta above this is fully opaque in float64 (exp(-1000) underflows to 0)
MAX_OPTICAL_THICKNESS = 1e3


def _check_same_shape(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shapes must match, got {shapes}")


def _check_padded(**tensors: Tensor) -> None:
    _check_same_shape(**tensors)
    name, tensor = next(iter(tensors.items()))
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be [R, S], got shape {tuple(tensor.shape)}")


def _check_packed(ray_indices: Tensor, **tensors: Tensor) -> None:
    _check_same_shape(ray_indices=ray_indices, **tensors)
    if ray_indices.dim() != 1:
        raise ValueError(f"packed samples must be flat [P], got shape {tuple(ray_indices.shape)}")
    if ray_indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"ray_indices must be an integer tensor, got {ray_indices.dtype}")


# ------------------------------------------------------------------ sampling along rays


def stratified_intervals(
    near: Tensor, far: Tensor, n_samples: int, perturb: bool, generator: Optional[torch.Generator] = None
) -> tuple[Tensor, Tensor, Tensor]:
    """S = n_samples equal bins between near and far on each ray, with one sample point per bin.

    Args:
        near, far: [R] distances where each ray's samples start and end.
        n_samples: S >= 1.
        perturb: False puts each sample at its bin's centre; True at a uniform random point in
            its bin (stratified sampling, NeRF's training time).
        generator: the random generator for perturb (on the inputs' device); None uses torch's
            global one.
    Returns:
        t_starts [R, S], t_ends [R, S] (the bins, as the intervals to render), t_mids [R, S]
        (the points where the field is evaluated).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    _check_same_shape(near=near, far=far)
    if near.dim() != 1:
        raise ValueError(f"near and far must be [R], got shape {tuple(near.shape)}")
    steps = torch.linspace(0.0, 1.0, n_samples + 1, dtype=near.dtype, device=near.device)  # [S+1]
    edges = near[:, None] + (far - near)[:, None] * steps  # [R, S+1]
    t_starts, t_ends = edges[:, :-1], edges[:, 1:]
    if perturb:
        u = torch.rand(t_starts.shape, dtype=near.dtype, device=near.device, generator=generator)
    else:
        u = torch.full_like(t_starts, 0.5)
    t_mids = t_starts + (t_ends - t_starts) * u
    return t_starts, t_ends, t_mids


def importance_samples(
    t_edges: Tensor,
    weights: Tensor,
    n_samples: int,
    perturb: bool,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Distances drawn from the piecewise-constant pdf that `weights` give over the bins (NeRF's fine pass).

    Each bin's probability is (w + 1e-5) / sum(w + 1e-5), uniform within the bin; samples are
    the inverse CDF at u in [0, 1]. perturb False uses the deterministic
    u_k = (k + 1/2) / n (the centres of n equal strata of [0, 1], so no sample lands on the
    outer edges of a bin that carries no weight); True uses sorted uniform random u.
    The result is detached: as in NeRF, no gradient flows through the sample positions.

    Args:
        t_edges: [R, S+1] bin edges, non-decreasing along each ray.
        weights: [R, S] non-negative bin weights (e.g. the coarse pass's rendering weights).
        n_samples: n >= 1.
        generator: the random generator for perturb (on the inputs' device).
    Returns:
        t [R, n], sorted along each ray, within [t_edges[:, 0], t_edges[:, -1]].
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if t_edges.dim() != 2 or weights.dim() != 2 or t_edges.shape != (weights.shape[0], weights.shape[1] + 1):
        raise ValueError(
            f"t_edges must be [R, S+1] and weights [R, S], got {tuple(t_edges.shape)} and {tuple(weights.shape)}"
        )
    with torch.no_grad():
        t_edges = t_edges.detach()
        n_rays, n_bins = weights.shape
        pdf = weights.detach().to(t_edges.dtype) + 1e-5
        pdf = pdf / pdf.sum(dim=-1, keepdim=True)
        cdf = torch.cumsum(pdf, dim=-1).clamp(max=1.0)
        cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf[:, :-1], torch.ones_like(cdf[:, :1])], dim=-1)  # [R, S+1]
        if perturb:
            u = torch.rand((n_rays, n_samples), dtype=cdf.dtype, device=cdf.device, generator=generator)
            u = torch.sort(u, dim=-1).values
        else:
            u = (torch.arange(n_samples, dtype=cdf.dtype, device=cdf.device) + 0.5) / n_samples
            u = u.expand(n_rays, n_samples).contiguous()
        above = torch.searchsorted(cdf, u, right=True).clamp(1, n_bins)  # [R, n]: cdf[above-1] <= u < cdf[above]
        below = above - 1
        cdf_below, cdf_above = torch.gather(cdf, 1, below), torch.gather(cdf, 1, above)
        t_below, t_above = torch.gather(t_edges, 1, below), torch.gather(t_edges, 1, above)
        span = cdf_above - cdf_below
        fraction = torch.where(span > 0, (u - cdf_below) / torch.where(span > 0, span, 1.0), 0.0).clamp(0.0, 1.0)
        # the inverse CDF is monotone in u (sorted): clamping each t to its bin's upper edge keeps
        # it sorted through rounding, without a sort
        return torch.minimum(t_below + fraction * (t_above - t_below), t_above)


def intervals_from_samples(t: Tensor, near: Tensor, far: Tensor) -> tuple[Tensor, Tensor]:
    """The interval each sample stands for: between the midpoints with its neighbours.

    Args:
        t: [R, S] sample distances, sorted along each ray.
        near, far: [R] where the first interval starts and the last one ends.
    Returns:
        t_starts [R, S] (near, then the midpoints) and t_ends [R, S] (the midpoints, then far).
    """
    if t.dim() != 2 or near.shape != (t.shape[0],) or far.shape != (t.shape[0],):
        raise ValueError(
            f"t must be [R, S] and near, far [R], got {tuple(t.shape)}, {tuple(near.shape)}, {tuple(far.shape)}"
        )
    mids = 0.5 * (t[:, 1:] + t[:, :-1])  # [R, S-1]
    t_starts = torch.cat([near[:, None].to(t.dtype), mids], dim=-1)
    t_ends = torch.cat([mids, far[:, None].to(t.dtype)], dim=-1)
    return t_starts, t_ends


# ------------------------------------------------------------------ padded rendering


def render_transmittance_from_density(t_starts: Tensor, t_ends: Tensor, sigmas: Tensor) -> Tensor:
    """Transmittance up to each sample, T_i = exp(-sum_{j<i} sigma_j (t_end_j - t_start_j)).

    Args:
        t_starts, t_ends, sigmas: [R, S].
    Returns:
        T [R, S] (1 at the first sample of every ray).
    """
    _check_padded(t_starts=t_starts, t_ends=t_ends, sigmas=sigmas)
    thickness = sigmas * (t_ends - t_starts)  # [R, S]
    shifted = torch.cat([torch.zeros_like(thickness[:, :1]), thickness[:, :-1]], dim=-1)
    return torch.exp(-torch.cumsum(shifted, dim=-1))


def render_weight_from_density(
    t_starts: Tensor, t_ends: Tensor, sigmas: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Rendering weights of density samples: w_i = T_i alpha_i with alpha_i = 1 - exp(-sigma_i delta_i).

    Args:
        t_starts, t_ends, sigmas: [R, S] intervals and their densities (sigma >= 0).
    Returns:
        weights [R, S], transmittance [R, S], alphas [R, S].
    """
    transmittance = render_transmittance_from_density(t_starts, t_ends, sigmas)
    alphas = -torch.expm1(-sigmas * (t_ends - t_starts))
    return transmittance * alphas, transmittance, alphas


def render_weight_from_alpha(alphas: Tensor) -> tuple[Tensor, Tensor]:
    """Rendering weights of opacity samples: T_i = prod_{j<i} (1 - alpha_j), w_i = T_i alpha_i.

    Args:
        alphas: [R, S] in [0, 1].
    Returns:
        weights [R, S], transmittance [R, S].
    """
    if alphas.dim() != 2:
        raise ValueError(f"alphas must be [R, S], got shape {tuple(alphas.shape)}")
    transmittance = torch.cumprod(
        torch.cat([torch.ones_like(alphas[:, :1]), 1.0 - alphas[:, :-1]], dim=-1), dim=-1
    )
    return transmittance * alphas, transmittance


def accumulate_along_rays(weights: Tensor, values: Optional[Tensor] = None) -> Tensor:
    """Weighted sums over each ray's samples.

    Args:
        weights: [R, S].
        values: [R, S, C] (colours, or distances as [R, S, 1] for depth), or None.
    Returns:
        [R, C] = sum_i w_i v_i, or with values None the opacity [R, 1] = sum_i w_i.
    """
    if weights.dim() != 2:
        raise ValueError(f"weights must be [R, S], got shape {tuple(weights.shape)}")
    if values is None:
        return weights.sum(dim=-1, keepdim=True)
    if values.dim() != 3 or values.shape[:2] != weights.shape:
        raise ValueError(f"values must be [R, S, C] with [R, S] = {tuple(weights.shape)}, got {tuple(values.shape)}")
    return (weights[..., None] * values).sum(dim=-2)


# ------------------------------------------------------------------ packed rendering


def render_transmittance_from_density_packed(
    t_starts: Tensor, t_ends: Tensor, sigmas: Tensor, ray_indices: Tensor, n_rays: int
) -> Tensor:
    """Transmittance T_i = exp(-sum_{j<i, same ray} sigma_j delta_j) of packed samples.

    Args:
        t_starts, t_ends, sigmas: [P].
        ray_indices: [P] long, non-decreasing (each ray's samples contiguous and sorted by t).
        n_rays: number of rays (> max(ray_indices)); rays without samples are allowed.
    Returns:
        T [P], in the dtype of sigmas.
    """
    _check_packed(ray_indices, t_starts=t_starts, t_ends=t_ends, sigmas=sigmas)
    if ray_indices.numel() == 0:
        return torch.ones_like(sigmas)
    thickness = (sigmas * (t_ends - t_starts)).clamp(max=MAX_OPTICAL_THICKNESS)
    wide = thickness.to(torch.float64)
    # exclusive cumulative sum over the whole flat array (shifted, not cumsum - element, which
    # would lose a small sample next to a large one)
    exclusive = torch.cumsum(torch.cat([wide.new_zeros(1), wide[:-1]]), dim=0)  # [P]
    counts = torch.bincount(ray_indices, minlength=n_rays)  # [n_rays]
    first = torch.cumsum(counts, dim=0) - counts  # [n_rays] index of each ray's first sample
    exclusive = (exclusive - exclusive[first[ray_indices]]).clamp(min=0.0)
    return torch.exp(-exclusive).to(sigmas.dtype)


def render_weight_from_density_packed(
    t_starts: Tensor, t_ends: Tensor, sigmas: Tensor, ray_indices: Tensor, n_rays: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Rendering weights of packed density samples (the packed twin of `render_weight_from_density`).

    Args:
        t_starts, t_ends, sigmas: [P].
        ray_indices: [P] long, non-decreasing (each ray's samples contiguous and sorted by t).
        n_rays: number of rays; rays without samples are allowed.
    Returns:
        weights [P], transmittance [P], alphas [P].
    """
    transmittance = render_transmittance_from_density_packed(t_starts, t_ends, sigmas, ray_indices, n_rays)
    alphas = -torch.expm1(-sigmas * (t_ends - t_starts))
    return transmittance * alphas, transmittance, alphas


def accumulate_along_rays_packed(
    weights: Tensor, values: Optional[Tensor], ray_indices: Tensor, n_rays: int
) -> Tensor:
    """Weighted sums of packed samples per ray (the packed twin of `accumulate_along_rays`).

    Args:
        weights: [P].
        values: [P, C], or None.
        ray_indices: [P] long, the ray of each sample (any order here).
        n_rays: number of rays.
    Returns:
        [n_rays, C] = sum over each ray's samples of w v, or with values None the opacity
        [n_rays, 1]; rays without samples get 0.
    """
    _check_packed(ray_indices, weights=weights)
    if values is None:
        src = weights[:, None]
    else:
        if values.dim() != 2 or values.shape[0] != weights.shape[0]:
            raise ValueError(f"values must be [P, C] with P = {weights.shape[0]}, got {tuple(values.shape)}")
        src = weights[:, None] * values
    out = torch.zeros((n_rays, src.shape[1]), dtype=src.dtype, device=src.device)
    return out.index_add(0, ray_indices, src)


def composite_on_background(
    colour: Tensor, opacity: Tensor, background: Union[Tensor, Sequence[float]]
) -> Tensor:
    """A ray's colour over a background: colour + (1 - opacity) background.

    Args:
        colour: [R, 3] accumulated (premultiplied) colour.
        opacity: [R, 1] accumulated opacity.
        background: [3] tensor or tuple (or [R, 3] per ray).
    Returns:
        [R, 3].
    """
    background = torch.as_tensor(background, dtype=colour.dtype, device=colour.device)
    return colour + (1.0 - opacity) * background
