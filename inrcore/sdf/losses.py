"""Loss terms for fitting signed distance fields to oriented points.

Each function returns per-point residuals [N] so callers can weight, average or inspect
them; `siren_sdf_loss` combines them as in Sitzmann et al. 2020 (SIREN), section 4.2.
"""

from __future__ import annotations

import torch

from inrcore.sdf.settings import LossConfig


def surface_residual(surface_values: torch.Tensor) -> torch.Tensor:
    """|u| at surface points: [N, 1] or [N] -> [N]."""
    return surface_values.reshape(-1).abs()


def normal_residual(surface_gradients: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """1 - cos(angle between grad u and the normal): [N, 3], [N, 3] -> [N]; 0 when aligned."""
    return 1.0 - torch.nn.functional.cosine_similarity(surface_gradients, normals, dim=-1, eps=1e-8)


def eikonal_residual(gradients: torch.Tensor) -> torch.Tensor:
    """(|grad u| - 1)^2: [N, 3] -> [N]; 0 for a true distance function."""
    return (gradients.norm(dim=-1) - 1.0) ** 2


def offsurface_residual(values: torch.Tensor, alpha: float) -> torch.Tensor:
    """exp(-alpha |u|) at points off the surface: [N, 1] or [N] -> [N]; penalises spurious zeros."""
    return torch.exp(-alpha * values.reshape(-1).abs())


def clamped_sdf_residual(values: torch.Tensor, target: torch.Tensor, clamp: float) -> torch.Tensor:
    """|clamp(u, -c, c) - clamp(d, -c, c)| (DeepSDF): [N, 1] or [N], [N] -> [N]."""
    u = values.reshape(-1).clamp(-clamp, clamp)
    return (u - target.reshape(-1).clamp(-clamp, clamp)).abs()


def weighted_mean(residuals: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean(w_i r_i) over the N residuals [N] (plain mean when weights [N] is None)."""
    return residuals.mean() if weights is None else (weights * residuals).mean()


def masked_mean(residuals: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of the residuals [N] where mask [N] (bool) is set, 0 where none is; all of them when
    mask is None. Computed as sum / count on the device (no residuals picked out: nothing to sync)."""
    if mask is None:
        return residuals.mean()
    chosen = mask.to(residuals.dtype)
    return (residuals * chosen).sum() / chosen.sum().clamp_min(1.0)


def siren_sdf_loss(
    surface_values: torch.Tensor,
    surface_gradients: torch.Tensor,
    surface_normals: torch.Tensor,
    volume_gradients: torch.Tensor,
    free_values: torch.Tensor,
    weights: LossConfig,
    known_values: torch.Tensor | None = None,
    known_sdf: torch.Tensor | None = None,
    surface_weights: torch.Tensor | None = None,
    free_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The SIREN SDF loss.

    surface.|u| + normal.(1 - cos) on the surface, eikonal.(|grad u| - 1)^2 on every
    point, offsurface.exp(-alpha |u|) on free-space points; each term a mean.

    Args:
        surface_values [S, 1], surface_gradients [S, 3], surface_normals [S, 3]: at surface samples.
        volume_gradients [V, 3]: gradients at all points used for the eikonal term.
        free_values [U, 1]: values at free-space (uniform) points; with `free_mask`, values [N, 1] at
            points of which free_mask [N] (bool) picks the free-space ones: the term is then a masked
            mean (0 when none is free), which has no data-dependent shape, so the step never waits
            for the device to count them.
        known_values [K, 1], known_sdf [K]: values and true distances at stored samples, used
            only when weights.sdf > 0.
        surface_weights [S]: per-sample factors of the two surface terms (None: all 1), e.g.
            `inrcore.queries.isopoints.bilateral_weights_from_isopoints`; the terms stay means over S.
    Returns:
        (scalar loss, {term name: the weighted mean, a detached 0-d tensor}): nothing is read back to
        the host here, so a step need not wait for the device (`inrcore.sdf.loop.history_entry` reads
        the terms at log steps only).
    """
    terms = {
        "surface": weights.surface * weighted_mean(surface_residual(surface_values), surface_weights),
        "normal": weights.normal * weighted_mean(normal_residual(surface_gradients, surface_normals), surface_weights),
        "eikonal": weights.eikonal * eikonal_residual(volume_gradients).mean(),
        "offsurface": weights.offsurface * masked_mean(offsurface_residual(free_values, weights.alpha), free_mask)
        if free_values.numel()
        else surface_values.new_zeros(()),
    }
    if weights.sdf > 0 and known_values is not None and known_values.numel():
        terms["sdf"] = weights.sdf * clamped_sdf_residual(known_values, known_sdf, weights.sdf_clamp).mean()
    total = sum(terms.values())
    return total, {name: value.detach() for name, value in terms.items()}


def igr_sdf_loss(
    surface_values: torch.Tensor,
    surface_gradients: torch.Tensor,
    surface_normals: torch.Tensor,
    volume_gradients: torch.Tensor,
    tau: float = 1.0,
    lam: float = 0.1,
    surface_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The IGR loss (Gropp et al. 2020): mean(|u| + tau |grad u - n|) on the surface plus
    lam mean((|grad u| - 1)^2) at the eikonal points (paper: tau = 1, lam = 0.1).

    Args:
        surface_values [S, 1], surface_gradients [S, 3], surface_normals [S, 3] (unit).
        volume_gradients [V, 3]: gradients at the eikonal sample points.
        surface_weights [S]: per-sample factors of the two surface terms (None: all 1).
    Returns:
        (scalar loss, {"surface", "normal", "eikonal"}: the weighted terms, detached 0-d tensors).
    """
    terms = {
        "surface": weighted_mean(surface_residual(surface_values), surface_weights),
        "normal": tau * weighted_mean((surface_gradients - surface_normals).norm(dim=-1), surface_weights),
        "eikonal": lam * eikonal_residual(volume_gradients).mean(),
    }
    return sum(terms.values()), {name: value.detach() for name, value in terms.items()}
