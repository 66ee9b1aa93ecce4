"""Networks as data: a field is a list of layer specs plus a flat dict of named tensors.

Keeping the architecture as plain data (not a bespoke nn.Module subclass per model) lets
the same weights be evaluated exactly here, and later with intervals or affine forms by
other rule tables, and lets a saved file describe itself (see `inrcore.weights`).

A SIREN (Sitzmann et al. 2020) is `dense, sine, dense, sine, ..., dense`, where a sine
layer computes sin(omega * x) of the dense layer before it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from .config import NetworkConfig


@dataclass(frozen=True)
class LayerSpec:
    """One layer. kind "dense" uses in_features/out_features; "sine" uses omega."""

    kind: str
    in_features: int = 0
    out_features: int = 0
    omega: float = 1.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


NetworkSpec = tuple[LayerSpec, ...]
Params = Mapping[str, torch.Tensor]


def spec_to_list(spec: NetworkSpec) -> list[dict]:
    """JSON-ready form of a network spec."""
    return [layer.to_dict() for layer in spec]


def spec_from_list(items: list[dict]) -> NetworkSpec:
    """Inverse of `spec_to_list`; raises ValueError on an unknown layer kind."""
    spec = tuple(LayerSpec(**item) for item in items)
    for layer in spec:
        if layer.kind not in EXACT_RULES:
            raise ValueError(f"unknown layer kind {layer.kind!r}; known: {sorted(EXACT_RULES)}")
    return spec


def siren_spec(config: NetworkConfig, in_features: int = 3, out_features: int = 1) -> NetworkSpec:
    """The layer list of a SIREN with `config.layers` hidden layers of `config.width` units."""
    widths = [in_features] + [config.width] * (config.layers + 1)
    layers: list[LayerSpec] = []
    for i in range(len(widths) - 1):
        layers.append(LayerSpec("dense", widths[i], widths[i + 1]))
        layers.append(LayerSpec("sine", omega=config.omega_first if i == 0 else config.omega_hidden))
    layers.append(LayerSpec("dense", widths[-1], out_features))
    return tuple(layers)


def init_siren_params(spec: NetworkSpec, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """SIREN initialisation.

    First dense layer: W ~ U(-1/n_in, 1/n_in). Every later dense layer, which follows a
    sine of frequency omega: W ~ U(-sqrt(6/n_in)/omega, sqrt(6/n_in)/omega). Biases
    ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) (the usual linear-layer default the paper keeps).
    Returns float32 tensors named "<index>_weight" [out, in] and "<index>_bias" [out].
    """
    params: dict[str, torch.Tensor] = {}
    previous_omega = None
    for index, layer in enumerate(spec):
        if layer.kind == "sine":
            previous_omega = layer.omega
            continue
        if layer.kind != "dense":
            continue
        n_in = layer.in_features
        if previous_omega is None:
            w_bound = 1.0 / n_in
        else:
            w_bound = math.sqrt(6.0 / n_in) / previous_omega
        b_bound = 1.0 / math.sqrt(n_in)
        params[f"{index}_weight"] = _uniform((layer.out_features, n_in), w_bound, generator)
        params[f"{index}_bias"] = _uniform((layer.out_features,), b_bound, generator)
    return params


def _uniform(shape, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float32) * 2.0 - 1.0) * bound


def _dense(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(x, params[f"{index}_weight"], params[f"{index}_bias"])


def _sine(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return torch.sin(layer.omega * x)


# The exact evaluation rule of each layer kind. Interval or affine evaluation register
# their own tables with the same keys.
EXACT_RULES: dict[str, Callable[[LayerSpec, int, Params, torch.Tensor], torch.Tensor]] = {
    "dense": _dense,
    "sine": _sine,
}


def evaluate_network(spec: NetworkSpec, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Exact forward pass.

    Args:
        spec: the layer list.
        params: tensors named "<index>_weight" / "<index>_bias".
        x: inputs [..., in_features].
    Returns:
        outputs [..., out_features].
    """
    for index, layer in enumerate(spec):
        x = EXACT_RULES[layer.kind](layer, index, params, x)
    return x


class FieldModule(nn.Module):
    """A trainable wrapper: parameters in a ParameterDict, forward = `evaluate_network`."""

    def __init__(self, spec: NetworkSpec, params: Params):
        super().__init__()
        self.spec = tuple(spec)
        self.weights = nn.ParameterDict({k: nn.Parameter(v.clone()) for k, v in params.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return evaluate_network(self.spec, self.weights, x)

    def params(self) -> dict[str, torch.Tensor]:
        """Detached float32 CPU copies of the parameters."""
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in self.weights.items()}


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" gives CUDA when present, otherwise the CPU; "cpu" and "cuda[:N]" are taken as is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here")
    return device
