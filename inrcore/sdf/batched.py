"""Fitting many shapes' SDFs at once: one process, one device, stacked weights.

B shapes train as B networks of one spec whose parameters are stacked ("<index>_weight"
[B, out, in], "<index>_bias" [B, out]): each step evaluates all of them with batched matrix
products on points [B, N, 3], which keeps a GPU busy where one small network leaves it idle.
Each shape gets the fit `fit_sdf` would give it with the same config, up to rounding: the
same initial parameters, its own `ShapeSampler` (the same point stream), the same loss, and
the same Adam steps. That holds because the shapes are independent: the gradient of the summed
losses with respect to shape b's parameters is shape b's own gradient, and Adam is elementwise.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from inrcore.device import resolve_device
from inrcore.errors import ConfigError
from inrcore.fields.build import network_for
from inrcore.fields.gradients import gradient_of_field
from inrcore.fields.networks import evaluate_network, stack_params, unstack_params
from inrcore.sdf.idfstages import (
    IdfStage,
    apply_idf_stage,
    combine_stage_losses,
    idf_param_groups,
    idf_stage_at,
    staged_idf_loss,
)
from inrcore.sdf.loop import StepLosses
from inrcore.sdf.settings import TrainConfig
from inrcore.sdf.training import FitResult, ShapeSampler, StepPoints, run_steps, step_loss, uses_idf_stages


# One shape's stored samples: surface_points [S, 3], surface_normals [S, 3], volume_points [V, 3]
# (may be empty) and volume_sdf [V] or None (point clouds).
ShapeSamples = tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]


def points_per_step(samplers: Sequence[ShapeSampler], config: TrainConfig) -> list[int]:
    """How many points each shape's steps hold (surface + stored off-surface + uniform [+ IGR perturbed])."""
    counts = []
    for sampler in samplers:
        n_known = config.batch_offsurface if len(sampler.volume) and config.batch_offsurface else 0
        counts.append(config.batch_surface + n_known + config.batch_uniform
                      + (config.batch_surface if sampler.use_igr else 0))
    return counts


def check_same_layout(samplers: Sequence[ShapeSampler], config: TrainConfig) -> None:
    """Stacked steps need as many points for every shape: raise ValueError when some shapes
    have stored off-surface points and others none."""
    counts = points_per_step(samplers, config)
    if len(set(counts)) > 1:
        with_volume = [i for i, s in enumerate(samplers) if len(s.volume)]
        without = [i for i, s in enumerate(samplers) if not len(s.volume)]
        raise ValueError(
            "shapes trained together need the same step layout: shapes "
            f"{with_volume} have stored off-surface points and shapes {without} have none; "
            "train them in separate batches")


def stacked_step_points(steps: Sequence[StepPoints]) -> torch.Tensor:
    """The shapes' step points as one tensor: B x [N, 3] -> [B, N, 3]."""
    return torch.stack([step.points for step in steps])


def stacked_losses(spec, params, batches: Sequence[StepPoints], config: TrainConfig,
                   stage: Optional[IdfStage] = None) -> StepLosses:
    """One (loss, terms) per shape from one evaluation of the stacked networks (`params` stacked [B, ...])
    at the shapes' step points; for an IDF, in `stage` (its terms then carry "stage")."""
    points = stacked_step_points(batches).requires_grad_(True)

    def shape_losses(values: torch.Tensor, gradients: torch.Tensor) -> StepLosses:
        # values [B, N, 1], gradients [B, N, 3]: shape b's values depend on its own points only
        return [step_loss(values[i], gradients[i], batch, config) for i, batch in enumerate(batches)]

    if stage is None:
        values = evaluate_network(spec, params, points)
        return shape_losses(values, gradient_of_field(values, points))
    calls: list[StepLosses] = []  # each field loss staged_idf_loss asks for, per shape

    def field_loss(values: torch.Tensor, gradients: torch.Tensor) -> tuple[torch.Tensor, dict]:
        calls.append(shape_losses(values, gradients))
        return sum(loss for loss, _ in calls[-1]), {}

    staged_idf_loss(spec, params, points, stage, field_loss,
                    treat_normal_as_constant=config.network.idf_detach_normal)
    combined = [combine_stage_losses(stage, [call[i] for call in calls]) for i in range(len(batches))]
    return [(loss, {**terms, "stage": stage.index}) for loss, terms in combined]


def shape_step_bytes(config: TrainConfig, surface_samples: int, volume_samples: int) -> int:
    """The memory (bytes) one more shape takes on the device in a stacked fit with `config`, whose stored
    samples are `surface_samples` oriented points and `volume_samples` off-surface points:

    - what autograd keeps from a step's forward pass (and from the gradient in the loss) for the
      backward pass, counted exactly: one step of one shape is run on the CPU on random points with
      saved-tensor hooks summing the distinct storages kept (the graph, hence the count, is the same
      on every device; an IDF in its blend stage, its largest graph), counted twice for backward's
      own gradients of the same sizes;
    - its parameters, their gradients and Adam's two moments (4 x the parameters);
    - its stored samples (points, normals, an IGR sigma; points, distances, a free-space flag).
    """
    cpu = dataclasses.replace(config, device="cpu")
    generator = torch.Generator().manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator), dim=1)
    volume = torch.rand(64 if volume_samples else 0, 3, generator=generator) * 2 - 1  # a sphere of radius 0.5
    sampler = ShapeSampler((normals * 0.5).numpy(), normals.numpy(), volume.numpy(), cpu, torch.device("cpu"),
                           volume_sdf=(volume.norm(dim=1) - 0.5).numpy())
    spec, initial = network_for(config.network, generator)
    params = {name: tensor.requires_grad_(True) for name, tensor in stack_params([initial]).items()}
    stage = idf_stage_at(0.35, 0.2, 0.5) if uses_idf_stages(config) else None  # blend: both fields' losses
    own = {tensor.untyped_storage().data_ptr() for tensor in params.values()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        ((loss, _),) = stacked_losses(spec, params, [sampler.draw()], cpu, stage)
    loss.backward()
    parameters = sum(tensor.numel() * tensor.element_size() for tensor in initial.values())
    samples = 4 * (surface_samples * 7 + volume_samples * 5)
    return 2 * sum(kept.values()) + 4 * parameters + samples


def shapes_for_memory(free_bytes: int, per_shape: int, share: float = 0.8, most: int = 1024) -> int:
    """How many shapes of `per_shape` bytes (`shape_step_bytes`) to train together in `share` of
    `free_bytes`: at least 1, at most `most`."""
    return int(min(max(share * free_bytes // per_shape, 1), most))


def fit_sdf_batch(
    shapes: Sequence[ShapeSamples],
    config: TrainConfig,
    bound: float = 1.0,
    on_log: Optional[Callable[[int, dict], None]] = None,
) -> list[FitResult]:
    """Fit B shapes' SDFs together, each as `fit_sdf` would fit it alone with `config`.

    Args:
        shapes: B tuples (surface_points [S, 3], surface_normals [S, 3], volume_points [V, 3],
            volume_sdf [V] or None), as `fit_sdf` takes them; S and V may differ between shapes,
            but either every shape or none has stored off-surface points (V > 0), so that all
            steps hold the same number of points.
        config: the training configuration (network kind "siren", "igr", "relu-pe" or "idf": an IDF's
            base and displacement networks are both stacked, and its stages are the run's, so
            they change for every shape at the same step, as they would alone).
        bound: fresh uniform points are drawn in [-bound, bound]^3.
        on_log: called with (shape index, history entry) every `log_every` steps and at the end.
    Returns:
        B FitResults in the order of `shapes`: the same spec, parameters on the CPU, each
        shape's own loss history; steps, seconds and device are the batch's.

    `config.seconds` caps the wall time of the whole batch; at least one step always runs.
    Raises ConfigError (a ValueError) with iso-points enabled,
    ValueError for mixed step layouts, FloatingPointError when a shape's loss is not finite at a
    logged step.
    """
    if config.isopoints.enabled:
        raise ConfigError("training.isopoints.enabled: batched training does not extract iso-points; "
                          "train such shapes one by one (training.shapes_per_batch = 1)")
    if not shapes:
        return []
    device = resolve_device(config.device)
    spec, initial = network_for(config.network, torch.Generator().manual_seed(config.seed))
    samplers = [ShapeSampler(surface, normals, volume, config, device, volume_sdf=sdf, bound=bound)
                for surface, normals, volume, sdf in shapes]
    check_same_layout(samplers, config)
    count = len(samplers)
    params = nn.ParameterDict({name: nn.Parameter(tensor.to(device))
                               for name, tensor in stack_params([initial] * count).items()})
    staged = uses_idf_stages(config)
    optimizer = torch.optim.Adam(idf_param_groups(params.items()) if staged else params.parameters(), lr=config.lr)

    def take_step(step: int, progress: float, lr: float) -> StepLosses:
        stage = None
        if staged:
            stage = idf_stage_at(progress, config.network.idf_base_fraction, config.network.idf_blend_end)
            apply_idf_stage(optimizer.param_groups, stage, lr)
        return stacked_losses(spec, params, [sampler.draw() for sampler in samplers], config, stage)

    steps, seconds, histories = run_steps(config, optimizer, take_step, on_log=on_log, name_shapes=True)
    final = {name: tensor.detach().to("cpu", torch.float32) for name, tensor in params.items()}
    return [FitResult(spec=spec, params={name: t.clone() for name, t in unstack_params(final, index).items()},
                      steps=steps, seconds=seconds, device=str(device), history=histories[index])
            for index in range(count)]
