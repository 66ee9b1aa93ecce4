"""Training an implicit displacement field in stages (Wang Yifan et al. 2022): the base alone, then a
blend towards the composed field, then the displacement alone with the base frozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from inrcore.fields.gradients import gradient_of_field
from inrcore.fields.idf import BASE, DISPLACEMENT, IdfSpec, idf_parts, part_params
from inrcore.fields.networks import Params, evaluate_network


@dataclass(frozen=True)
class IdfStage:
    """Where the staged IDF training stands at one moment.

    index: 0 "base" (the base SIREN alone), 1 "blend" (the loss and the learning rates move from
    the base to the composed field), 2 "detail" (the composed field, base frozen).
    base_loss_weight, composed_loss_weight: factors of the loss on f and on f̂.
    base_lr_factor, displacement_lr_factor: factors of each network's learning rate (0: frozen).
    """

    index: int
    name: str
    base_loss_weight: float
    composed_loss_weight: float
    base_lr_factor: float
    displacement_lr_factor: float


def idf_stage_at(progress: float, base_fraction: float = 0.2, blend_end: float = 0.5) -> IdfStage:
    """The stage at `progress` (0 to 1) of a staged IDF fit.

    Before `base_fraction` only the base trains, on the loss of f. Between `base_fraction` and
    `blend_end` a half-cosine s = (1 - cos(π t)) / 2, t the position within that interval, moves
    both the loss weights (f: 1 - s, f̂: s) and the learning-rate factors (base: 1 - s,
    displacement: s). From `blend_end` on, the loss is on f̂ alone and only the displacement
    network trains.

    Knots 0.2 and 0.5 and the half-cosine are the authors' (the "phase" learning-rate factors and
    the loss-weight knots of their reconstruction experiment, interpolated as their
    `_get_loss_weight` / `_get_lr_lambdas` do). Their displacement learning-rate factor then
    decays from 1 to 0.1 by the end; here the fit's own cosine decay lr -> lr_final does that.
    """
    if not 0.0 <= base_fraction <= blend_end <= 1.0:
        raise ValueError(f"need 0 <= base_fraction <= blend_end <= 1, got {base_fraction} and {blend_end}")
    if progress < base_fraction:
        return IdfStage(0, "base", 1.0, 0.0, 1.0, 0.0)
    if progress >= blend_end:
        return IdfStage(2, "detail", 0.0, 1.0, 0.0, 1.0)
    s = 0.5 * (1.0 - math.cos(math.pi * (progress - base_fraction) / (blend_end - base_fraction)))
    return IdfStage(1, "blend", 1.0 - s, s, 1.0 - s, s)


def idf_param_groups(named_params: Iterable[tuple[str, torch.Tensor]]) -> list[dict]:
    """Optimiser parameter groups {"name": "base" | "displacement", "params": [...]} from
    (name, tensor) pairs of an IDF's flat parameter dict."""
    groups = {BASE: [], DISPLACEMENT: []}
    for name, tensor in named_params:
        part = BASE if name.startswith(f"{BASE}_") else DISPLACEMENT
        groups[part].append(tensor)
    return [{"name": part, "params": tensors} for part, tensors in groups.items()]


def apply_idf_stage(param_groups: list[dict], stage: IdfStage, lr: float) -> None:
    """Set each group's learning rate to lr times its stage factor; a group with factor 0 is
    frozen (requires_grad off, so no gradient is computed for it), as the authors' code does."""
    factors = {BASE: stage.base_lr_factor, DISPLACEMENT: stage.displacement_lr_factor}
    for group in param_groups:
        factor = factors[group["name"]]
        group["lr"] = lr * factor
        for tensor in group["params"]:
            tensor.requires_grad_(factor > 0.0)


FieldLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def staged_idf_loss(spec: IdfSpec, params: Params, points: torch.Tensor, stage: IdfStage, field_loss: FieldLoss,
                    treat_normal_as_constant: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """One step's IDF loss: base_loss_weight · L(f, ∇f) + composed_loss_weight · L(f̂, ∇f̂).

    Args:
        points [N, 3] with requires_grad. field_loss(values [N, 1], gradients [N, 3]) -> (loss,
            terms): the per-field loss (e.g. the SIREN loss of `step_loss`).
    Returns:
        (scalar loss, terms): in the base stage the terms of L(f); later those of L(f̂), plus
        L(f)'s under "base_<term>" while the base still carries loss weight.
    """
    if stage.composed_loss_weight == 0.0:
        values = evaluate_network(spec.base, part_params(params, BASE), points)
        return combine_stage_losses(stage, [field_loss(values, gradient_of_field(values, points))])
    need_base_loss = stage.base_loss_weight > 0.0
    parts = idf_parts(spec, params, points, create_graph=need_base_loss or not treat_normal_as_constant,
                      treat_normal_as_constant=treat_normal_as_constant)
    losses = [field_loss(parts.values, gradient_of_field(parts.values, points))]
    if need_base_loss:
        losses.append(field_loss(parts.base_values, parts.base_gradients))
    return combine_stage_losses(stage, losses)


def combine_stage_losses(stage: IdfStage, losses: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, dict]:
    """A stage's loss and terms from the per-field losses in the order `staged_idf_loss` computes them:
    [L(f)] in the base stage, else [L(f̂)] and, while the base carries loss weight, L(f) after it (its
    terms then named "base_<term>"). Batched fits combine each shape's own losses this way."""
    if stage.composed_loss_weight == 0.0:
        return losses[0]
    loss, terms = losses[0]
    loss = stage.composed_loss_weight * loss
    if len(losses) > 1:
        base_loss, base_terms = losses[1]
        loss = loss + stage.base_loss_weight * base_loss
        terms = {**terms, **{f"base_{name}": value for name, value in base_terms.items()}}
    return loss, terms
