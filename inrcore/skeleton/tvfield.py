"""The TV-regularised neural SDF of neural skeletons (Clémot & Digne 2023).

A distance field fitted to oriented points is smooth near the surface and free away from it;
penalising the total variation of ‖∇u‖ makes ‖∇u‖ piecewise constant (1 almost everywhere), so
that it dips only on a thin set: the medial axis, where a true distance function's gradient is
undefined. `inrcore.skeleton.tracing` finds that dip.

The loss (`skeleton_field_loss`), with the weights of `SkeletonFieldConfig`:
    eikonal·mean (‖∇u‖ − 1)² at box points
  + surface·(surface_value·mean u² + mean (1 − cos(∇u, n))) at surface points
  + learning·(learning_value·mean (u − d)² + mean (1 − cos(∇u, ∇d))) at learning points
    (only while progress < learning_until), d the distance to the nearest input point signed by
    that point's normal (`learning_targets`)
  + tv·decay(progress)·mean ‖∇‖∇u‖‖ at box points (`tv_residual`, `tv_decay`).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from inrcore.device import resolve_device
from inrcore.fields.build import network_for
from inrcore.fields.gradients import field_of_network, gradient_of_field
from inrcore.fields.networks import FieldModule
from inrcore.geometry.metrics import nearest_neighbours
from inrcore.sdf.loop import StepLosses
from inrcore.sdf.losses import eikonal_residual, normal_residual
from inrcore.sdf.training import FitResult, run_steps
from inrcore.skeleton.settings import SkeletonFieldConfig


def learning_targets(queries: np.ndarray, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approximate signed distances from oriented points, and their gradients.

    d(q) = s·‖q − p‖ with p the nearest of `points` and s the sign of (q − p)·n_p; ∇d = s·(q − p)/‖q − p‖
    (where q = p, ∇d = n_p).

    Args:
        queries [Q, 3]; points [P, 3]; normals [P, 3] (unit, outward).
    Returns:
        d [Q] and ∇d [Q, 3], float32.
    """
    queries = np.asarray(queries, np.float64).reshape(-1, 3)
    distance, nearest = nearest_neighbours(queries, np.asarray(points, np.float64))
    offset = queries - points[nearest]
    sign = np.where(np.einsum("ij,ij->i", offset, normals[nearest]) >= 0.0, 1.0, -1.0)
    safe = np.maximum(distance, 1e-12)[:, None]
    gradient = np.where(distance[:, None] > 1e-12, sign[:, None] * offset / safe, normals[nearest])
    return (sign * distance).astype(np.float32), gradient.astype(np.float32)


def tv_residual(gradients: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """‖∇‖∇u‖‖ per point: [N, 3] gradients of u at points [N, 3] (in the autograd graph) -> [N].

    ∇‖∇u‖ = H∇u/‖∇u‖ (H the Hessian), by a second backward pass kept in the graph so the term trains.
    """
    norm = gradients.norm(dim=-1)
    (slope,) = torch.autograd.grad(norm.sum(), points, create_graph=True)
    return slope.norm(dim=-1)


def tv_decay(progress: float, epochs: float) -> float:
    """1/(1 + (progress·epochs/10)²): the authors' decay over their outer iterations, as a
    function of training progress in [0, 1] (epochs = 50: 1 at the start, 1/26 at the end)."""
    return 1.0 / (1.0 + (progress * epochs / 10.0) ** 2)


def skeleton_field_loss(values: torch.Tensor, gradients: torch.Tensor, points: torch.Tensor, n_box: int,
                        n_surface: int, normals: torch.Tensor, config: SkeletonFieldConfig, tv_weight: float,
                        learning: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> tuple[torch.Tensor, dict]:
    """The loss of one step (see the module docstring).

    Args:
        values [N, 1], gradients [N, 3]: u and ∇u at `points` [N, 3] (requires grad): the `n_box` box
            points first, then `n_surface` surface points with `normals` [n_surface, 3], then the
            learning points (when `learning` = (d [L], ∇d [L, 3]) is given).
        tv_weight: the TV term's weight at this step (tv × decay).
    Returns:
        (scalar loss, {"eikonal", "surface", "normal", "learning", "tv": tensors of the weighted terms}).
    """
    box = slice(0, n_box)
    surface = slice(n_box, n_box + n_surface)
    terms = {
        "eikonal": config.eikonal * eikonal_residual(gradients[box]).mean(),
        "surface": config.surface * config.surface_value * values[surface].pow(2).mean(),
        "normal": config.surface * normal_residual(gradients[surface], normals).mean(),
    }
    if learning is not None:
        target, target_gradient = learning
        rest = slice(n_box + n_surface, None)
        terms["learning"] = config.learning * (
            config.learning_value * (values[rest].reshape(-1) - target).pow(2).mean()
            + normal_residual(gradients[rest], target_gradient).mean())
    if tv_weight > 0:
        terms["tv"] = tv_weight * tv_residual(gradients, points)[box].mean()
    return sum(terms.values()), terms


def sphere_start(spec, params: dict, radius: float, steps: int, bound: float, seed: int) -> None:
    """Fit the network's parameters (in place) to the signed distance of a sphere of `radius` at the
    origin, by `steps` Adam steps of mean squared error on 4096 points uniform in the box (the
    authors start every shape from such a field): the sign is right from the first step of the real fit."""
    if steps == 0:
        return
    weights = {name: value.detach().requires_grad_(True) for name, value in params.items()}
    optimizer = torch.optim.Adam(weights.values(), lr=1e-4)
    generator = torch.Generator(device=next(iter(weights.values())).device).manual_seed(seed)
    field = field_of_network(spec, weights)
    for _ in range(steps):
        x = (torch.rand((4096, 3), generator=generator, device=generator.device) * 2.0 - 1.0) * bound
        loss = (field(x).reshape(-1) - (x.norm(dim=-1) - radius)).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def fit_skeleton_field(surface_points: np.ndarray, surface_normals: np.ndarray, config: SkeletonFieldConfig,
                       device: str = "auto", bound: float = 1.0,
                       on_log: Optional[Callable[[dict], None]] = None) -> FitResult:
    """Fit the TV-regularised SDF to oriented points in [-bound, bound]^3.

    Each step draws `batch_box` points uniform in the box and `batch_surface` of the oriented
    points, and while progress < `learning_until` as many of the `n_learning` learning points
    (uniform in the box, drawn once, with `learning_targets`). Adam with the learning rate
    decaying from lr to lr_final (cosine), `steps` steps or `seconds` of wall time.

    Args:
        surface_points [S, 3], surface_normals [S, 3]: the input, normalised, normals unit outward.
        on_log: called with each history entry (every `log_every` steps and the last).
    Returns:
        the fitted field (parameters on the CPU); history entries carry the weighted terms and
        "tv_weight".
    """
    points = np.asarray(surface_points, np.float32).reshape(-1, 3)
    normals = np.asarray(surface_normals, np.float32).reshape(-1, 3)
    if len(points) == 0:
        raise ValueError("no surface points to fit")
    where = resolve_device(device)
    generator = torch.Generator().manual_seed(config.seed)
    spec, initial = network_for(config.network, generator)
    initial = {name: value.to(where) for name, value in initial.items()}
    sphere_start(spec, initial, config.start_radius, config.start_steps, bound, config.seed)
    module = FieldModule(spec, initial).to(where)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)

    draw = torch.Generator(device=where).manual_seed(config.seed + 1)
    surface = torch.as_tensor(points, device=where)
    surface_normals_t = torch.as_tensor(normals, device=where)
    learning_points = np.random.default_rng(config.seed).uniform(-bound, bound, (config.n_learning, 3))
    target, target_gradient = learning_targets(learning_points, points, normals)
    learning = [torch.as_tensor(a, device=where) for a in (learning_points.astype(np.float32), target,
                                                            target_gradient)]

    def take_step(step: int, progress: float, lr: float) -> StepLosses:
        box = (torch.rand((config.batch_box, 3), device=where, generator=draw) * 2.0 - 1.0) * bound
        pick = torch.randint(len(surface), (config.batch_surface,), device=where, generator=draw)
        parts, known = [box, surface[pick]], None
        if config.n_learning and progress < config.learning_until:
            chosen = torch.randint(config.n_learning, (config.batch_box,), device=where, generator=draw)
            parts.append(learning[0][chosen])
            known = (learning[1][chosen], learning[2][chosen])
        x = torch.cat(parts).requires_grad_(True)
        values = module(x)
        gradients = gradient_of_field(values, x)
        tv_weight = config.tv * tv_decay(progress, config.tv_decay_epochs)
        loss, terms = skeleton_field_loss(values, gradients, x, config.batch_box, config.batch_surface,
                                          surface_normals_t[pick], config, tv_weight, known)
        return [(loss, {**{name: term.detach() for name, term in terms.items()}, "tv_weight": tv_weight})]

    steps, seconds, (history,) = run_steps(config, optimizer, take_step,
                                           on_log=None if on_log is None else lambda _, entry: on_log(entry))
    return FitResult(spec=spec, params=module.params(), steps=steps, seconds=seconds, device=str(where),
                     history=history)
