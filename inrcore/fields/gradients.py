"""Derivatives of fields: autograd gradients, unit normals, values in batches.
"""

from __future__ import annotations

from typing import Callable

import torch

from inrcore.fields.networks import FieldSpec, Params, evaluate_field


def gradient_of_field(values: torch.Tensor, points: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Spatial gradient of a scalar field.

    Args:
        values: field values [N, 1] (or [N]) computed from `points`.
        points: inputs [N, 3] with requires_grad.
    Returns:
        gradients [N, 3] (part of the autograd graph when create_graph).
    """
    (grad,) = torch.autograd.grad(
        values, points, grad_outputs=torch.ones_like(values), create_graph=create_graph
    )
    return grad


@torch.no_grad()
def field_values(spec: FieldSpec, params: Params, points: torch.Tensor, batch: int = 65536) -> torch.Tensor:
    """Exact field values at points [N, 3] -> [N]."""
    if len(points) == 0:
        return points.new_zeros(0)
    return torch.cat([evaluate_field(spec, params, points[i:i + batch])[..., 0] for i in range(0, len(points), batch)])


def field_normals(spec: FieldSpec, params: Params, points: torch.Tensor, batch: int = 16384) -> torch.Tensor:
    """Unit gradients of the field at points [N, 3] -> [N, 3] (zero where the gradient vanishes)."""
    _, grad = values_and_gradients(field_of_network(spec, params), points, batch)
    norm = grad.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, grad / norm.clamp(min=1e-30), torch.zeros_like(grad))


Field = Callable[[torch.Tensor], torch.Tensor]


def field_of_network(spec: FieldSpec, params: Params) -> Field:
    """The field of a network spec and its parameters as a callable: points [N, 3] -> values [N, 1].

    The parameters must live on the device of the points the callable is given.
    """
    def field(points: torch.Tensor) -> torch.Tensor:
        return evaluate_field(spec, params, points, create_graph=torch.is_grad_enabled())

    return field


def values_and_gradients(field: Field, points: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """f and ∇f at points, detached: [N, 3] -> (values [N], gradients [N, 3]), `chunk` points at a time.

    Works under torch.no_grad() too (gradients are switched on inside). A field that does not
    depend on its input has gradient zero.
    """
    values, gradients = [], []
    for part in points.split(chunk):
        with torch.enable_grad():
            x = part.detach().requires_grad_(True)
            v = field(x).reshape(-1)
            (g,) = torch.autograd.grad(v.sum(), x, allow_unused=True)
        values.append(v.detach())
        gradients.append(torch.zeros_like(x) if g is None else g.detach())
    if not values:
        return points.new_zeros(0), points.new_zeros(0, 3)
    return torch.cat(values), torch.cat(gradients)
