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

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from inrcore.fields.networks import (
    CompositeField,
    Interval,
    NetworkBounds,
    NetworkSpec,
    Params,
    evaluate_network,
    init_siren_params,
    spec_from_list,
    spec_to_list,
)


BASE = "base"
DISPLACEMENT = "displacement"
IDF_KIND = "idf"


@dataclass(frozen=True)
class IdfSpec(CompositeField):
    """An implicit displacement field: two SIRENs and the two numbers composing them.

    base: layer list of f, 3 -> 1. displacement: layer list of D, 3 -> 1.
    nu: attenuation width ν in χ(f) = 1 / (1 + (f/ν)^4). max_displacement: bound of |d|.
    """

    base: NetworkSpec
    displacement: NetworkSpec
    nu: float = 0.05
    max_displacement: float = 0.05
    kind = IDF_KIND

    def to_dict(self) -> dict:
        """JSON-ready form: {"kind": "idf", "base": [...], "displacement": [...], "nu", "max_displacement"}."""
        return {"kind": IDF_KIND, "base": spec_to_list(self.base), "displacement": spec_to_list(self.displacement),
                "nu": self.nu, "max_displacement": self.max_displacement}

    def evaluate(self, params: Params, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """f̂ at x: [..., 3] -> [..., 1] (see `evaluate_idf`)."""
        return evaluate_idf(self, params, x, create_graph=create_graph)

    def bound(self, params: Params, centre: torch.Tensor, axes: torch.Tensor, network_bounds: NetworkBounds) -> Interval:
        """Bounds [B, 1] of f̂(x) = f(x + χ(f(x)) d(x) n(x)) over boxes, from bounds of the two networks.

        |n| <= 1, so f̂ over a box is f over the box grown by the largest displacement in it,
        reach = max χ · max |d|: max |d| = max_displacement · tanh of the bound of the displacement
        network over the box, and χ(f) = 1 / (1 + (f/ν)^4) is largest where |f| is smallest, so
        max χ = χ(distance of the base's bound from 0) (1 when it straddles 0). The grown box is the
        box plus three axis-aligned axes of length reach, bounded with the base network.
        """
        base, displacement = part_params(params, BASE), part_params(params, DISPLACEMENT)
        lower, upper = network_bounds(self.base, base, centre, axes)
        d_lower, d_upper = network_bounds(self.displacement, displacement, centre, axes)
        largest = torch.maximum(torch.tanh(d_lower).abs(), torch.tanh(d_upper).abs()) * self.max_displacement
        nearest = torch.where(lower > 0, lower, torch.where(upper < 0, -upper, torch.zeros_like(lower)))
        reach = largest * attenuation(nearest, self.nu)  # [B, 1]
        eye = torch.eye(3, dtype=axes.dtype, device=axes.device)
        grown = torch.cat([axes, reach[..., None] * eye], dim=-2)  # [B, k + 3, 3]
        return network_bounds(self.base, base, centre, grown)


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


