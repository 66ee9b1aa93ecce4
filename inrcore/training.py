"""Fitting a neural SDF to one shape's samples."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from .config import TrainConfig
from .losses import gradient_of_field, igr_sdf_loss, siren_sdf_loss
from .networks import FieldModule, NetworkSpec, network_for, resolve_device
from .sampling import neighbour_scales


@dataclass
class FitResult:
    """A fitted field and how the fit went.

    history: one dict per logged step: {"step", "seconds", "loss", "surface", "normal",
    "eikonal", "offsurface", "lr"}.
    """

    spec: NetworkSpec
    params: dict[str, torch.Tensor]
    steps: int
    seconds: float
    device: str
    history: list[dict] = field(default_factory=list)


def learning_rate_at(progress: float, lr: float, lr_final: float) -> float:
    """Cosine decay from lr (progress 0) to lr_final (progress 1)."""
    progress = min(max(progress, 0.0), 1.0)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * progress))


def fit_sdf(
    surface_points: np.ndarray,
    surface_normals: np.ndarray,
    volume_points: np.ndarray,
    config: TrainConfig,
    volume_sdf: Optional[np.ndarray] = None,
    bound: float = 1.0,
    on_log: Optional[Callable[[dict], None]] = None,
) -> FitResult:
    """Fit an SDF: a SIREN with the SIREN loss, or an IGR / ReLU+PE network with the IGR loss.

    Each step draws `batch_surface` oriented surface points, `batch_offsurface` stored
    off-surface points and `batch_uniform` fresh uniform points in [-bound, bound]^3. The
    eikonal term applies to all of them; the exp(-alpha|u|) term to the uniform points and
    to the stored points whose true distance (`volume_sdf`, when given) exceeds
    `config.loss.offsurface_margin`. Stops after `config.steps` steps or `config.seconds`
    of wall time, whichever comes first.

    Args:
        surface_points [S, 3], surface_normals [S, 3]: oriented points on the surface.
        volume_points [V, 3]: points off the surface (may be empty).
        config: the training configuration.
        volume_sdf [V]: true signed distances of volume_points, if known.
        on_log: called with each history entry (every `log_every` steps and the last).
    Returns:
        the fitted field (parameters on the CPU) and its loss history.

    With the IGR loss (network kinds "igr" and "relu-pe") the eikonal points of a step are
    the stored off-surface points, the fresh uniform points, and Gaussian perturbations of the
    step's surface points with each point's own sigma: the distance to its
    `loss.igr_neighbours`-th nearest surface point (Gropp et al. 2020).
    """
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    spec, initial = network_for(config.network, generator)
    module = FieldModule(spec, initial).to(device)
    use_igr = config.network.kind != "siren"
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)

    surface = torch.as_tensor(np.asarray(surface_points, np.float32), device=device)
    normals = torch.as_tensor(np.asarray(surface_normals, np.float32), device=device)
    volume = torch.as_tensor(np.asarray(volume_points, np.float32).reshape(-1, 3), device=device)
    known = None
    if volume_sdf is None:
        volume_free = torch.zeros(len(volume), dtype=torch.bool, device=device)
    else:
        known = torch.as_tensor(np.asarray(volume_sdf, np.float32).reshape(-1), device=device)
        volume_free = known.abs() > config.loss.offsurface_margin
    if len(surface) == 0:
        raise ValueError("no surface points to fit")
    if use_igr:
        k = min(config.loss.igr_neighbours, len(surface) - 1)
        sigmas = torch.as_tensor(neighbour_scales(np.asarray(surface_points, np.float64), k).astype(np.float32),
                                 device=device)
    sample_gen = torch.Generator(device=device).manual_seed(config.seed + 1)

    history: list[dict] = []
    start = time.perf_counter()
    step = 0
    while step < config.steps:
        elapsed = time.perf_counter() - start
        if step > 0 and config.seconds is not None and elapsed >= config.seconds:
            break  # at least one step always runs
        progress = step / config.steps
        if config.seconds is not None:
            progress = max(progress, elapsed / config.seconds)
        lr = learning_rate_at(progress, config.lr, config.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = lr

        s_idx = torch.randint(len(surface), (config.batch_surface,), device=device, generator=sample_gen)
        parts = [surface[s_idx]]
        known_sdf = None
        free_mask = [torch.zeros(config.batch_surface, dtype=torch.bool, device=device)]
        if len(volume) and config.batch_offsurface:
            v_idx = torch.randint(len(volume), (config.batch_offsurface,), device=device, generator=sample_gen)
            parts.append(volume[v_idx])
            free_mask.append(volume_free[v_idx])
            known_sdf = known[v_idx] if known is not None else None
        uniform = (torch.rand((config.batch_uniform, 3), device=device, generator=sample_gen) * 2.0 - 1.0) * bound
        parts.append(uniform)
        free_mask.append(torch.ones(config.batch_uniform, dtype=torch.bool, device=device))
        if use_igr:
            noise = torch.randn((config.batch_surface, 3), device=device, generator=sample_gen)
            parts.append(surface[s_idx] + noise * sigmas[s_idx, None])
            free_mask.append(torch.zeros(config.batch_surface, dtype=torch.bool, device=device))
        points = torch.cat(parts).requires_grad_(True)
        free_mask = torch.cat(free_mask)

        values = module(points)
        gradients = gradient_of_field(values, points)
        n_s = config.batch_surface
        if use_igr:
            loss, terms = igr_sdf_loss(values[:n_s], gradients[:n_s], normals[s_idx], gradients[n_s:],
                                       tau=config.loss.igr_tau, lam=config.loss.igr_lambda)
        else:
            loss, terms = siren_sdf_loss(
                surface_values=values[:n_s],
                surface_gradients=gradients[:n_s],
                surface_normals=normals[s_idx],
                volume_gradients=gradients,
                free_values=values[free_mask],
                weights=config.loss,
                known_values=values[n_s:n_s + len(known_sdf)] if known_sdf is not None else None,
                known_sdf=known_sdf,
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1

        if step % config.log_every == 0 or step == config.steps:
            entry = {"step": step, "seconds": time.perf_counter() - start, "loss": float(loss.detach()), "lr": lr}
            entry.update(terms)
            if not math.isfinite(entry["loss"]):
                raise FloatingPointError(f"training diverged at step {step}: loss is {entry['loss']}")
            history.append(entry)
            if on_log is not None:
                on_log(entry)

    seconds = time.perf_counter() - start
    if not history or history[-1]["step"] != step:
        # Record the final state even when a time budget stopped the loop between logs.
        entry = {"step": step, "seconds": seconds, "loss": float(loss.detach()), "lr": lr}
        entry.update(terms)
        history.append(entry)
        if on_log is not None:
            on_log(entry)
    return FitResult(spec=spec, params=module.params(), steps=step, seconds=seconds,
                     device=str(device), history=history)
