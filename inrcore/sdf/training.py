"""Fitting a neural SDF to one shape's samples."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from inrcore.device import resolve_device
from inrcore.fields.build import network_for
from inrcore.fields.gradients import gradient_of_field
from inrcore.fields.networks import FieldModule, FieldSpec
from inrcore.geometry.sampling import neighbour_scales
from inrcore.queries.isopoints import (
    bilateral_weights_from_isopoints,
    extract_isopoints,
    isopoints_due,
    jittered,
    normals_from_neighbours,
)
from inrcore.queries.levelset import IsoPoints
from inrcore.sdf.idfstages import apply_idf_stage, idf_param_groups, idf_stage_at, staged_idf_loss
from inrcore.sdf.loop import LossHistories, StepLosses, learning_rate_at, time_is_up
from inrcore.sdf.losses import igr_sdf_loss, siren_sdf_loss
from inrcore.sdf.settings import TrainConfig
from inrcore.settings import budget_progress


@dataclass
class FitResult:
    """A fitted field and how the fit went.

    history: one dict per logged step: {"step", "seconds", "loss", "surface", "normal",
    "eikonal", "offsurface", "lr"}, with iso-points on also "isopoints" (how many are in use)
    and "isopoint_refreshes" (how many extractions so far), and with bilateral weights once
    they are in use "data_weight" (their mean over the surface data points).
    """

    spec: FieldSpec
    params: dict[str, torch.Tensor]
    steps: int
    seconds: float
    device: str
    history: list[dict] = field(default_factory=list)


def training_progress(step: int, elapsed: float, config: TrainConfig) -> float:
    """How far the run is, 0 to 1 (`budget_progress` of its steps and time budget)."""
    return budget_progress(step, elapsed, config.steps, config.seconds)


def run_steps(config: TrainConfig, optimizer: torch.optim.Optimizer,
              take_step: Callable[[int, float, float], StepLosses],
              on_log: Optional[Callable[[int, dict], None]] = None,
              name_shapes: bool = False) -> tuple[int, float, list[list[dict]]]:
    """The step loop of `fit_sdf` and `fit_sdf_batch` (and of `inrcore.skeleton.tvfield`), for one or
    more shapes trained together. `config` gives steps, seconds, lr, lr_final and log_every (a
    TrainConfig, or any settings with those fields).

    Steps until `config.steps`, or from the second step on until `config.seconds` of wall time
    (`time_is_up`). Each step sets every parameter group's learning rate to `learning_rate_at`
    the `training_progress`, calls take_step(step, progress, lr) (which may change the rates,
    as IDF stages do) for the step's `StepLosses` and steps the optimiser on their sum. Every
    `log_every` steps, at the last step and, when a time budget stopped the loop between logs,
    after it, the shapes' entries go to `LossHistories(on_log, name_shapes)`.

    Returns:
        (steps taken, seconds of wall time, one history per shape).
    """
    histories = LossHistories(on_log, name_shapes)
    start = time.perf_counter()
    step = 0
    while step < config.steps:
        elapsed = time.perf_counter() - start
        if time_is_up(step, elapsed, config):
            break
        progress = training_progress(step, elapsed, config)
        lr = learning_rate_at(progress, config.lr, config.lr_final)
        for group in optimizer.param_groups:
            group["lr"] = lr
        losses = take_step(step, progress, lr)
        optimizer.zero_grad(set_to_none=True)
        sum(loss for loss, _ in losses).backward()
        optimizer.step()
        step += 1
        if step % config.log_every == 0 or step == config.steps:
            histories.log(step, time.perf_counter() - start, losses, lr)

    seconds = time.perf_counter() - start
    histories.close(step, seconds, losses, lr)
    return step, seconds, histories.histories


@dataclass
class StepPoints:
    """The points of one training step for one shape.

    points [N, 3]: the step's surface samples first (`n_surface` of them), then the stored
    off-surface samples (`n_known`, with true distances `known_sdf` [n_known] when known),
    then fresh uniform points, then (IGR loss only) Gaussian perturbations of the surface samples.
    normals [n_surface, 3]; free [N] bool: points where the exp(-alpha|u|) term applies.
    surface_weights [n_surface] or None: factors of the surface terms (bilateral iso-point weights).
    """

    points: torch.Tensor
    normals: torch.Tensor
    n_surface: int
    n_known: int
    known_sdf: Optional[torch.Tensor]
    free: torch.Tensor
    surface_weights: Optional[torch.Tensor] = None


class ShapeSampler:
    """Draws each step's points for one shape from its stored samples, on one device.

    Args:
        surface_points [S, 3], surface_normals [S, 3]: oriented surface points.
        volume_points [V, 3]: stored off-surface points (may be empty).
        volume_sdf [V]: their true signed distances, or None (point clouds).
        config: the training configuration (batch sizes, loss kind, seed).
        device: where the step's tensors live.
        bound: fresh uniform points are drawn in [-bound, bound]^3.
    """

    def __init__(self, surface_points, surface_normals, volume_points, config: TrainConfig,
                 device: torch.device, volume_sdf=None, bound: float = 1.0):
        self.config = config
        self.bound = bound
        self.device = device
        self.surface = torch.as_tensor(np.asarray(surface_points, np.float32).reshape(-1, 3), device=device)
        self.normals = torch.as_tensor(np.asarray(surface_normals, np.float32).reshape(-1, 3), device=device)
        if len(self.surface) == 0:
            raise ValueError("no surface points to fit")
        self.volume = torch.as_tensor(np.asarray(volume_points, np.float32).reshape(-1, 3), device=device)
        self.known = None
        if volume_sdf is None:
            self.volume_free = torch.zeros(len(self.volume), dtype=torch.bool, device=device)
        else:
            self.known = torch.as_tensor(np.asarray(volume_sdf, np.float32).reshape(-1), device=device)
            self.volume_free = self.known.abs() > config.loss.offsurface_margin
        self.use_igr = uses_igr_loss(config)
        self.sigmas = None
        if self.use_igr:
            k = min(config.loss.igr_neighbours, len(self.surface) - 1)
            scales = neighbour_scales(np.asarray(surface_points, np.float64).reshape(-1, 3), k)
            self.sigmas = torch.as_tensor(scales.astype(np.float32), device=device)
        self.generator = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.isopoints: Optional[torch.Tensor] = None
        self.isopoint_normals: Optional[torch.Tensor] = None
        self.isopoint_sigmas: Optional[torch.Tensor] = None
        self.data_weights: Optional[torch.Tensor] = None

    def set_isopoints(self, points: torch.Tensor, normals: torch.Tensor,
                      data_weights: Optional[torch.Tensor] = None) -> None:
        """Draw `config.isopoints.batch_share` of each step's surface points from these oriented
        points [M, 3], [M, 3] from now on (M = 0 goes back to the data alone). With the IGR loss
        each gets as sigma its `loss.igr_neighbours`-th nearest data point's distance.
        `data_weights` [P] (one per surface data point, or None) weigh the data rows' surface
        terms from now on; iso-point rows weigh 1."""
        self.data_weights = None if data_weights is None else data_weights.detach().to(self.device, torch.float32)
        if len(points) == 0:
            self.isopoints = self.isopoint_normals = self.isopoint_sigmas = None
            return
        self.isopoints = points.detach().to(self.device, torch.float32)
        self.isopoint_normals = normals.detach().to(self.device, torch.float32)
        if self.use_igr:
            from scipy.spatial import cKDTree

            k = min(self.config.loss.igr_neighbours, len(self.surface))
            distances, _ = cKDTree(self.surface.cpu().numpy()).query(self.isopoints.cpu().numpy(), k=k)
            scales = np.asarray(distances, np.float32).reshape(len(points), -1)[:, -1]
            self.isopoint_sigmas = torch.as_tensor(scales, device=self.device)

    def draw(self) -> StepPoints:
        """The next step's points (the stream is fixed by `config.seed`)."""
        config, device, gen = self.config, self.device, self.generator
        s_idx = torch.randint(len(self.surface), (config.batch_surface,), device=device, generator=gen)
        surface, normals = self.surface[s_idx], self.normals[s_idx]
        sigmas = self.sigmas[s_idx] if self.use_igr else None
        weights = self.data_weights[s_idx] if self.data_weights is not None else None
        if self.isopoints is not None:
            surface, normals, sigmas, weights = self._with_isopoints(surface, normals, sigmas, weights)
        parts = [surface]
        free = [torch.zeros(config.batch_surface, dtype=torch.bool, device=device)]
        known_sdf, n_known = None, 0
        if len(self.volume) and config.batch_offsurface:
            v_idx = torch.randint(len(self.volume), (config.batch_offsurface,), device=device, generator=gen)
            parts.append(self.volume[v_idx])
            free.append(self.volume_free[v_idx])
            n_known = config.batch_offsurface
            known_sdf = self.known[v_idx] if self.known is not None else None
        uniform = (torch.rand((config.batch_uniform, 3), device=device, generator=gen) * 2.0 - 1.0) * self.bound
        parts.append(uniform)
        free.append(torch.ones(config.batch_uniform, dtype=torch.bool, device=device))
        if self.use_igr:
            noise = torch.randn((config.batch_surface, 3), device=device, generator=gen)
            parts.append(surface + noise * sigmas[:, None])
            free.append(torch.zeros(config.batch_surface, dtype=torch.bool, device=device))
        return StepPoints(points=torch.cat(parts), normals=normals, n_surface=config.batch_surface,
                          n_known=n_known, known_sdf=known_sdf, free=torch.cat(free), surface_weights=weights)

    def _with_isopoints(self, surface, normals, sigmas, weights):
        """The step's surface rows [B, 3], normals [B, 3], sigmas [B] and weights [B] (each of the
        last two or None) with the last round(batch_share * B) rows replaced by randomly drawn
        iso-points, which weigh 1."""
        count = round(self.config.isopoints.batch_share * len(surface))
        if count == 0:
            return surface, normals, sigmas, weights
        pick = torch.randint(len(self.isopoints), (count,), device=self.device, generator=self.generator)
        keep = len(surface) - count
        surface = torch.cat([surface[:keep], self.isopoints[pick]])
        normals = torch.cat([normals[:keep], self.isopoint_normals[pick]])
        if sigmas is not None:
            sigmas = torch.cat([sigmas[:keep], self.isopoint_sigmas[pick]])
        if weights is not None:
            weights = torch.cat([weights[:keep], weights.new_ones(count)])
        return surface, normals, sigmas, weights


def uses_igr_loss(config: TrainConfig) -> bool:
    """Network kinds "igr" and "relu-pe" train with the IGR loss; the others with the SIREN loss."""
    return config.network.kind in ("igr", "relu-pe")


def step_loss(values: torch.Tensor, gradients: torch.Tensor, step: StepPoints,
              config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """One shape's loss at one step.

    Args:
        values [N, 1], gradients [N, 3]: the field and its spatial gradient at `step.points`.
    Returns:
        (scalar loss, {term: float}) with the IGR loss or the SIREN loss (see `fit_sdf`).
    """
    n_s = step.n_surface
    if uses_igr_loss(config):
        return igr_sdf_loss(values[:n_s], gradients[:n_s], step.normals, gradients[n_s:],
                            tau=config.loss.igr_tau, lam=config.loss.igr_lambda,
                            surface_weights=step.surface_weights)
    known = step.known_sdf is not None
    return siren_sdf_loss(
        surface_values=values[:n_s],
        surface_gradients=gradients[:n_s],
        surface_normals=step.normals,
        volume_gradients=gradients,
        free_values=values,
        free_mask=step.free,
        weights=config.loss,
        known_values=values[n_s:n_s + step.n_known] if known else None,
        known_sdf=step.known_sdf if known else None,
        surface_weights=step.surface_weights,
    )


def uses_idf_stages(config: TrainConfig) -> bool:
    """Network kind "idf" trains in stages: the base field alone, then the composed field (`inrcore.fields.idf`)."""
    return config.network.kind == "idf"


def refresh_isopoints(field: Callable[[torch.Tensor], torch.Tensor], sampler: ShapeSampler,
                      previous: Optional[IsoPoints], config: TrainConfig, generator: torch.Generator,
                      bound: float = 1.0) -> IsoPoints:
    """New iso-points of the field being trained (`config.isopoints`), handed to `sampler`.

    They start from the previous iso-points moved by uniform noise in [-jitter, jitter]^3, or,
    the first time (or when none were left), from up to n_points distinct surface data points;
    then `extract_isopoints` projects, resamples and upsamples them. Their normals are the
    field's unit gradients, or with `normals` "estimated" those of `normals_from_neighbours`.
    With `bilateral`, every surface data point is weighted by `bilateral_weights_from_isopoints`
    (against the iso-points and their gradient normals) until the next refresh.

    Args:
        field: points [N, 3] -> values [N, 1], on the sampler's device.
    Returns:
        the iso-points [M, 3] now in use (M may be 0: then the sampler uses the data alone).
    """
    settings = config.isopoints
    if previous is not None and len(previous):
        start = jittered(previous.points, settings.jitter, generator)
    else:
        data = torch.unique(sampler.surface, dim=0)
        start = data[torch.randperm(len(data), generator=generator, device=generator.device)[:settings.n_points]]
    iso = extract_isopoints(field, settings.n_points, bound=bound, init=start, generator=generator,
                            resample_iterations=settings.resample_iterations, neighbours=settings.neighbours,
                            upsample=settings.upsample, max_iterations=settings.max_iterations,
                            tolerance=settings.tolerance, max_step=settings.max_step)
    data_weights = None
    if settings.bilateral:
        data_weights = bilateral_weights_from_isopoints(sampler.surface, sampler.normals, iso.points, iso.normals,
                                                        settings.bilateral_angle, settings.bilateral_radius)
    if settings.normals == "estimated":
        iso = IsoPoints(iso.points, normals_from_neighbours(iso.points, iso.normals))
    sampler.set_isopoints(iso.points, iso.normals, data_weights)
    return iso


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

    An implicit displacement field (network kind "idf") trains with the SIREN loss in the
    stages of `inrcore.sdf.idfstages.idf_stage_at`: the base field f alone before
    `network.idf_base_fraction` of the run, then a blend of the losses of f and of the composed
    field f̂ with the learning rates moving from the base to the displacement network, and from
    `network.idf_blend_end` on f̂ alone with the base frozen. Its history entries carry
    "stage" (0 base, 1 blend, 2 detail; a number, so it logs as a metric) and, while the base
    still carries loss weight next to f̂, the base's terms as "base_<term>".

    With `config.isopoints.enabled` (Wang Yifan et al. 2021), from `isopoints.warmup` of the run
    on and then every `isopoints.refresh_every` steps, iso-points of the current field are
    extracted (`refresh_isopoints`) and a share of each step's surface points is drawn from them
    (`ShapeSampler.set_isopoints`); history entries then carry "isopoints" and "isopoint_refreshes".
    """
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    spec, initial = network_for(config.network, generator)
    module = FieldModule(spec, initial).to(device)
    staged = uses_idf_stages(config)
    optimizer = torch.optim.Adam(idf_param_groups(module.weights.items()) if staged else module.parameters(),
                                 lr=config.lr)
    sampler = ShapeSampler(surface_points, surface_normals, volume_points, config, device,
                           volume_sdf=volume_sdf, bound=bound)

    isopoints: Optional[IsoPoints] = None
    refreshes, last_refresh = 0, None
    isopoint_generator = torch.Generator(device=device).manual_seed(config.seed + 2)

    def take_step(step: int, progress: float, lr: float) -> StepLosses:
        """The IDF stage's learning rates, an iso-point refresh when due, and one draw's loss."""
        nonlocal isopoints, refreshes, last_refresh
        stage = idf_stage_at(progress, config.network.idf_base_fraction, config.network.idf_blend_end) if staged else None
        if stage is not None:
            apply_idf_stage(optimizer.param_groups, stage, lr)
        if config.isopoints.enabled and isopoints_due(step, progress, last_refresh, config.isopoints.warmup,
                                                      config.isopoints.refresh_every):
            isopoints = refresh_isopoints(module, sampler, isopoints, config, isopoint_generator, bound)
            refreshes, last_refresh = refreshes + 1, step

        batch = sampler.draw()
        points = batch.points.requires_grad_(True)
        if stage is None:
            values = module(points)
            gradients = gradient_of_field(values, points)
            loss, terms = step_loss(values, gradients, batch, config)
        else:
            loss, terms = staged_idf_loss(
                spec, module.weights, points, stage,
                lambda values, gradients: step_loss(values, gradients, batch, config),
                treat_normal_as_constant=config.network.idf_detach_normal)
            terms = {**terms, "stage": stage.index}
        if config.isopoints.enabled:
            terms = {**terms, "isopoints": len(isopoints) if isopoints is not None else 0,
                     "isopoint_refreshes": refreshes}
            if sampler.data_weights is not None:
                terms["data_weight"] = sampler.data_weights.mean().detach()
        return [(loss, terms)]

    steps, seconds, (history,) = run_steps(config, optimizer, take_step,
                                           on_log=None if on_log is None else lambda _, entry: on_log(entry))
    return FitResult(spec=spec, params=module.params(), steps=steps, seconds=seconds,
                     device=str(device), history=history)
