"""Implicit displacement fields (Wang Yifan, Rahmann & Sorkine-Hornung, "Geometry-consistent
neural shape representation with implicit displacement fields", ICLR 2022).

A smooth base SDF f (a low-frequency SIREN) is displaced along its own normals by a bounded
high-frequency SIREN d:

    f̂(x) = f(x + χ(f(x)) · d(x) · n(x)),   n = ∇f / |∇f|,   χ(f) = 1 / (1 + (f / ν)^4),
    d(x) = max_displacement · tanh(D(x))

where D is the displacement network's raw output. χ switches the displacement off away from
the base surface (χ(0) = 1, χ(ν) = 1/2) and the scaled tanh bounds the offset.

Numbers carried over (each also noted where it is used):
  - ω of the base SIREN 15 and of the displacement SIREN 60, on every sine layer: the authors'
    surface-reconstruction experiment (yifita/idf, net/experiments/displacement_benchmark/
    ablation/ablation_phased_scaledTanh_yes_act_yes_baseLoss_yes.json, the one the README runs).
  - ν = 0.05 ("activation_threshold") and max_displacement = 0.05 ("offset_max"), same file.
    The code ramps the bound as min(iteration · offset_base, offset_max); with the published
    offset_base = offset_max = 0.05 that is 0.05 from the first iteration on, so the bound is a
    constant here.
  - The staged schedule (`idf_stage_at`): same file's "phase" and loss-weight knots, 0.2 and 0.5.
  - In training the authors' network (net/classes/network/displacement.py) uses n and χ as
    constants in the composition (both come from detached tensors), so ∇f̂ in the loss is
    ∇f(y) + χ (n·∇f(y)) ∇d, without the Hessian of f or the slope of χ. `idf_parts` does the same
    when `treat_normal_as_constant` (what `fit_sdf` passes by default,
    `NetworkConfig.idf_detach_normal`); otherwise n and χ stay in the graph and autograd gives the
    exact gradient of f̂.

Parameters are one flat dict: the base network's tensors named "base_<index>_weight" /
"base_<index>_bias", the displacement network's "displacement_<index>_weight" / ... (no dots,
which `nn.ParameterDict` forbids).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

import torch

from .config import NetworkConfig
from .losses import gradient_of_field
from .networks import (
    NetworkSpec, Params, evaluate_network, init_siren_params, siren_spec, spec_from_list, spec_to_list,
)

BASE = "base"
DISPLACEMENT = "displacement"
IDF_KIND = "idf"


@dataclass(frozen=True)
class IdfSpec:
    """An implicit displacement field: two SIRENs and the two numbers composing them.

    base: layer list of f, 3 -> 1. displacement: layer list of D, 3 -> 1.
    nu: attenuation width ν in χ(f) = 1 / (1 + (f/ν)^4). max_displacement: bound of |d|.
    """

    base: NetworkSpec
    displacement: NetworkSpec
    nu: float = 0.05
    max_displacement: float = 0.05

    def to_dict(self) -> dict:
        """JSON-ready form: {"kind": "idf", "base": [...], "displacement": [...], "nu", "max_displacement"}."""
        return {"kind": IDF_KIND, "base": spec_to_list(self.base), "displacement": spec_to_list(self.displacement),
                "nu": self.nu, "max_displacement": self.max_displacement}

    def evaluate(self, params: Params, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """f̂ at x: [..., 3] -> [..., 1] (see `evaluate_idf`)."""
        return evaluate_idf(self, params, x, create_graph=create_graph)


def idf_spec_from_dict(data: Mapping[str, Any]) -> IdfSpec:
    """Inverse of `IdfSpec.to_dict`; raises ValueError on a wrong kind, missing keys or bad numbers."""
    if not isinstance(data, Mapping) or data.get("kind") != IDF_KIND:
        raise ValueError(f"not an implicit displacement field description: {data!r:.80}")
    missing = sorted({"base", "displacement", "nu", "max_displacement"} - set(data))
    if missing:
        raise ValueError(f"implicit displacement field description lacks {', '.join(missing)}")
    spec = IdfSpec(base=spec_from_list(data["base"]), displacement=spec_from_list(data["displacement"]),
                   nu=float(data["nu"]), max_displacement=float(data["max_displacement"]))
    if spec.nu <= 0 or spec.max_displacement <= 0:
        raise ValueError(f"nu and max_displacement must be positive, got {spec.nu} and {spec.max_displacement}")
    return spec


def idf_spec_for(config: NetworkConfig) -> IdfSpec:
    """The IDF `config` describes: a base SIREN of `layers` x `width` with ω = idf_omega_base on
    every sine layer, a displacement SIREN of idf_displacement_layers x idf_displacement_width
    (default: the base's) with ω = idf_omega_displacement, and idf_nu, idf_max_displacement."""
    base = siren_spec(dataclasses.replace(config, omega_first=config.idf_omega_base,
                                          omega_hidden=config.idf_omega_base))
    displacement = siren_spec(dataclasses.replace(
        config,
        width=config.idf_displacement_width or config.width,
        layers=config.idf_displacement_layers or config.layers,
        omega_first=config.idf_omega_displacement,
        omega_hidden=config.idf_omega_displacement,
    ))
    return IdfSpec(base=base, displacement=displacement, nu=config.idf_nu,
                   max_displacement=config.idf_max_displacement)


def init_idf_params(spec: IdfSpec, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """SIREN initialisation of both networks (`init_siren_params`, base first, then displacement),
    as one flat dict of float32 tensors named "base_..." and "displacement_..."."""
    return {**prefixed_params(BASE, init_siren_params(spec.base, generator)),
            **prefixed_params(DISPLACEMENT, init_siren_params(spec.displacement, generator))}


def prefixed_params(part: str, params: Params) -> dict[str, torch.Tensor]:
    """One network's tensors renamed into the IDF's flat dict: "0_weight" -> "<part>_0_weight"."""
    return {f"{part}_{name}": tensor for name, tensor in params.items()}


def part_params(params: Params, part: str) -> dict[str, torch.Tensor]:
    """One network's tensors out of the IDF's flat dict, under their own names (the same tensors,
    so gradients reach them): "<part>_0_weight" -> "0_weight"."""
    prefix = f"{part}_"
    return {name[len(prefix):]: tensor for name, tensor in params.items() if name.startswith(prefix)}


def attenuation(base_values: torch.Tensor, nu: float) -> torch.Tensor:
    """χ(f) = 1 / (1 + (f/ν)^4), elementwise: 1 on the base surface, 1/2 at |f| = ν, ~ (ν/f)^4 far off."""
    return 1.0 / (1.0 + (base_values / nu) ** 4)


def bounded_displacement(raw: torch.Tensor, max_displacement: float) -> torch.Tensor:
    """d = max_displacement · tanh(raw), elementwise: |d| < max_displacement."""
    return max_displacement * torch.tanh(raw)


@dataclass
class IdfParts:
    """The pieces of one IDF evaluation at N points x [..., 3] (shapes for x [N, 3]).

    base_values [N, 1]: f(x). base_gradients [N, 3]: ∇f(x) (in the graph when create_graph).
    normals [N, 3]: n(x). attenuation [N, 1]: χ(f(x)). displacement [N, 1]: d(x), bounded.
    shifted [N, 3]: y = x + χ d n. values [N, 1]: f̂(x) = f(y).
    """

    base_values: torch.Tensor
    base_gradients: torch.Tensor
    normals: torch.Tensor
    attenuation: torch.Tensor
    displacement: torch.Tensor
    shifted: torch.Tensor
    values: torch.Tensor


def idf_parts(spec: IdfSpec, params: Params, x: torch.Tensor, create_graph: bool = False,
              treat_normal_as_constant: bool = False) -> IdfParts:
    """Evaluate the IDF and keep its pieces.

    Args:
        spec: the field. params: flat dict ("base_..." and "displacement_..." tensors).
        x: points [..., 3]. When x requires grad (training), every output is a function of x
            itself, so `gradient_of_field(parts.values, x)` is ∇f̂.
        create_graph: keep ∇f(x) (hence n) in the autograd graph, so that gradients of the
            outputs w.r.t. x and the parameters include n's dependence on them (needed for the
            exact ∇f̂, and for losses on ∇f). Without it n enters as a constant.
        treat_normal_as_constant: use n and χ as constants in y = x + χ d n (stop-gradient), as
            the authors' code does in training; values are unchanged, ∇f̂ then lacks the terms
            through ∇n and ∇χ.
    Works under torch.no_grad (grid evaluation): gradients are switched on just for ∇f and
    every returned tensor is then detached.
    """
    grad_wanted = torch.is_grad_enabled()
    base_params, displacement_params = part_params(params, BASE), part_params(params, DISPLACEMENT)
    with torch.enable_grad():
        query = x if (x.requires_grad and grad_wanted) else x.detach().requires_grad_(True)
        base_values = evaluate_network(spec.base, base_params, query)
        (base_gradients,) = torch.autograd.grad(base_values, query, grad_outputs=torch.ones_like(base_values),
                                                create_graph=create_graph and grad_wanted,
                                                retain_graph=grad_wanted or create_graph)
    with torch.set_grad_enabled(grad_wanted):
        if not grad_wanted:
            query, base_values, base_gradients = query.detach(), base_values.detach(), base_gradients.detach()
        normals = torch.nn.functional.normalize(base_gradients, dim=-1)
        chi = attenuation(base_values, spec.nu)
        if treat_normal_as_constant:
            normals, chi = normals.detach(), chi.detach()
        displacement = bounded_displacement(evaluate_network(spec.displacement, displacement_params, query),
                                            spec.max_displacement)
        shifted = query + chi * displacement * normals
        values = evaluate_network(spec.base, base_params, shifted)
    return IdfParts(base_values=base_values, base_gradients=base_gradients, normals=normals, attenuation=chi,
                    displacement=displacement, shifted=shifted, values=values)


def evaluate_idf(spec: IdfSpec, params: Params, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """f̂(x) = f(x + χ(f(x)) d(x) n(x)): points [..., 3] -> values [..., 1].

    Under torch.no_grad it returns detached values (∇f is taken internally). With
    create_graph=True and x requiring grad, the result is differentiable w.r.t. the parameters
    and x, exactly (n and χ stay in the graph), so `gradient_of_field` gives the true ∇f̂ and a
    loss on it back-propagates.
    """
    return idf_parts(spec, params, x, create_graph=create_graph).values


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
        return field_loss(values, gradient_of_field(values, points))
    need_base_loss = stage.base_loss_weight > 0.0
    parts = idf_parts(spec, params, points, create_graph=need_base_loss or not treat_normal_as_constant,
                      treat_normal_as_constant=treat_normal_as_constant)
    loss, terms = field_loss(parts.values, gradient_of_field(parts.values, points))
    loss = stage.composed_loss_weight * loss
    if need_base_loss:
        base_loss, base_terms = field_loss(parts.base_values, parts.base_gradients)
        loss = loss + stage.base_loss_weight * base_loss
        terms = {**terms, **{f"base_{name}": value for name, value in base_terms.items()}}
    return loss, terms
