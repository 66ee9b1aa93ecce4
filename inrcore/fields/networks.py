"""Networks as data: a field is a list of layer specs plus a flat dict of named tensors.

Keeping the architecture as plain data (not a bespoke nn.Module subclass per model) lets
the same weights be evaluated exactly here, and later with intervals or affine forms by
other rule tables, and lets a saved file describe itself (see `inrcore.fields.weights`).

A SIREN (Sitzmann et al. 2020) is `dense, sine, dense, sine, ..., dense`, where a sine
layer computes sin(omega * x) of the dense layer before it. An IGR network (Gropp et al.
2020) is `[fourier], dense, softplus|relu, ..., concat_input, dense, ..., dense` with the
geometric initialisation of Atzmon & Lipman (SAL, 2020), which starts near the SDF of a sphere.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping, Optional, Union

import torch
from torch import nn


@dataclass(frozen=True)
class LayerSpec:
    """One layer.

    kinds: "dense" (in_features -> out_features), "sine" (sin(omega x)), "relu",
    "softplus" (log(1 + exp(beta x)) / beta), "elu" (x for x > 0, alpha (exp(x) - 1) otherwise),
    "tanh" (the DeepSDF decoder's last layer),
    "fourier" (x -> [x, sin(2^k pi x),
    cos(2^k pi x) for k < frequencies], 3 -> 3 + 6 frequencies), "concat_input" ([x, e] / sqrt 2
    where e is the network's encoded input, i.e. the output of a leading fourier layer or the
    input itself).
    """

    kind: str
    in_features: int = 0
    out_features: int = 0
    omega: float = 1.0
    beta: float = 100.0
    frequencies: int = 0
    alpha: float = 1.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


NetworkSpec = tuple[LayerSpec, ...]
Params = Mapping[str, torch.Tensor]
Interval = tuple[torch.Tensor, torch.Tensor]
# Bounds of one network over boxes: (spec, params, centre [B, 3], axes [B, k, 3]) -> (lower, upper).
NetworkBounds = Callable[[NetworkSpec, Params, torch.Tensor, torch.Tensor], Interval]


class CompositeField(abc.ABC):
    """A field composed of named networks (e.g. `inrcore.fields.idf.IdfSpec`), declaring in one
    place how it is evaluated, bounded and described. Its parameters are one flat dict holding
    every part's tensors under the part's prefix.

    kind: the name in its JSON description ({"kind": kind, ...}), which `inrcore.fields.build`
    maps back to the class. `bound` gets a function bounding one plain network over boxes
    (interval or affine arithmetic, from `inrcore.queries.bounds`) and combines the parts' bounds
    soundly, so exact evaluation and range analysis read the same definition.
    """

    kind: ClassVar[str]

    @abc.abstractmethod
    def evaluate(self, params: Params, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """Values at points: [..., 3] -> [..., 1]. create_graph keeps internal derivatives in the graph."""

    @abc.abstractmethod
    def bound(self, params: Params, centre: torch.Tensor, axes: torch.Tensor, network_bounds: NetworkBounds) -> Interval:
        """(lower, upper) [B, 1] over the boxes {centre + sum_j t_j axes_j, |t_j| <= 1}."""

    @abc.abstractmethod
    def to_dict(self) -> dict:
        """JSON-ready description with a "kind" key."""


# What a field file or FitResult describes: a plain layer list, or a composite field.
FieldSpec = Union[NetworkSpec, CompositeField]


def spec_to_list(spec: NetworkSpec) -> list[dict]:
    """JSON-ready form of a network spec."""
    return [layer.to_dict() for layer in spec]


def spec_from_list(items: list[dict]) -> NetworkSpec:
    """Inverse of `spec_to_list`; raises ValueError on an unknown layer kind."""
    spec = tuple(LayerSpec(**item) for item in items)
    for layer in spec:
        if layer.kind not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {layer.kind!r}; known: {sorted(LAYER_KINDS)}")
        if layer.kind == "elu" and not layer.alpha > 0:
            raise ValueError(f"elu layers need alpha > 0, got {layer.alpha}")
    return spec


def siren_spec(width: int, layers: int, omega_first: float = 30.0, omega_hidden: float = 30.0,
               in_features: int = 3, out_features: int = 1) -> NetworkSpec:
    """The layer list of a SIREN with `layers` hidden layers of `width` units: sin(omega (W x + b)),
    omega_first on the first sine layer and omega_hidden on the others (Sitzmann et al.: 30)."""
    widths = [in_features] + [width] * (layers + 1)
    layers: list[LayerSpec] = []
    for i in range(len(widths) - 1):
        layers.append(LayerSpec("dense", widths[i], widths[i + 1]))
        layers.append(LayerSpec("sine", omega=omega_first if i == 0 else omega_hidden))
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


def stack_params(params_list: list[Params]) -> dict[str, torch.Tensor]:
    """Parameters of B networks of one spec as one stacked set: "<index>_weight" [B, out, in],
    "<index>_bias" [B, out]. `evaluate_network` then runs all B networks at once on inputs
    [B, N, in_features]. Raises ValueError on an empty list or differing names or shapes.
    """
    if not params_list:
        raise ValueError("stack_params needs at least one parameter set")
    names = set(params_list[0])
    for i, params in enumerate(params_list[1:], start=1):
        if set(params) != names:
            raise ValueError(f"parameter set {i} has names {sorted(params)}, set 0 has {sorted(names)}")
        for name in names:
            if params[name].shape != params_list[0][name].shape:
                raise ValueError(f"parameter {name!r} of set {i} has shape {tuple(params[name].shape)}, "
                                 f"set 0 has {tuple(params_list[0][name].shape)}")
    return {name: torch.stack([params[name] for params in params_list]) for name in params_list[0]}


def unstack_params(stacked: Params, index: int) -> dict[str, torch.Tensor]:
    """Network `index`'s parameters out of a stacked set (views: [B, out, in] -> [out, in], [B, out] -> [out])."""
    return {name: tensor[index] for name, tensor in stacked.items()}


def _dense(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    """x [..., in] with weight [out, in], bias [out] -> [..., out]; or, stacked networks,
    x [B, N, in] with weight [B, out, in], bias [B, out] -> [B, N, out] (one batched matmul)."""
    weight, bias = params[f"{index}_weight"], params[f"{index}_bias"]
    if weight.dim() == 2:
        return torch.nn.functional.linear(x, weight, bias)
    return torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2))


def _sine(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return torch.sin(layer.omega * x)


def _relu(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def _softplus(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(x, beta=layer.beta)


def _elu(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.elu(x, alpha=layer.alpha)


def _tanh(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def fourier_features(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """Positional encoding: [..., d] -> [..., d + 2 d frequencies] as [x, sin(2^k pi x)..., cos(2^k pi x)...]."""
    if frequencies == 0:
        return x
    angles = fourier_angles(x, fourier_scales(frequencies, x))
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)


def fourier_scales(frequencies: int, like: torch.Tensor) -> torch.Tensor:
    """2^k pi for k < frequencies, [frequencies], on like's dtype and device (shared by the exact,
    interval and affine rules of the "fourier" layer, so the bounds follow any change here)."""
    return (2.0 ** torch.arange(frequencies, dtype=like.dtype, device=like.device)) * math.pi


def fourier_angles(x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[..., d] -> [..., frequencies * d] as x * 2^k pi, k-major."""
    return (x[..., None, :] * scales[:, None]).flatten(-2)


def _fourier(layer: LayerSpec, index: int, params: Params, x: torch.Tensor) -> torch.Tensor:
    return fourier_features(x, layer.frequencies)


# The exact evaluation rule of each layer kind. Interval or affine evaluation register
# their own tables with the same keys. "concat_input" needs the network's encoded input, so
# `evaluate_network` applies it itself.
EXACT_RULES: dict[str, Callable[[LayerSpec, int, Params, torch.Tensor], torch.Tensor]] = {
    "dense": _dense,
    "sine": _sine,
    "relu": _relu,
    "softplus": _softplus,
    "elu": _elu,
    "tanh": _tanh,
    "fourier": _fourier,
}
LAYER_KINDS = frozenset(EXACT_RULES) | {"concat_input"}


def evaluate_network(spec: NetworkSpec, params: Params, x: torch.Tensor,
                     after_activation: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Exact forward pass.

    Args:
        spec: the layer list.
        params: tensors named "<index>_weight" / "<index>_bias".
        x: inputs [..., in_features].
        after_activation: applied to the output of every activation layer (training-time dropout
            of the DeepSDF decoder); None for the plain network.
    Returns:
        outputs [..., out_features].
    """
    encoded = x
    for index, layer in enumerate(spec):
        if layer.kind == "concat_input":
            x = torch.cat([x, encoded], dim=-1) / math.sqrt(2.0)
            continue
        x = EXACT_RULES[layer.kind](layer, index, params, x)
        if layer.kind == "fourier" and index == 0:
            encoded = x
        elif after_activation is not None and layer.kind not in ("dense", "fourier"):
            x = after_activation(x)
    return x


def evaluate_field(spec: FieldSpec, params: Params, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """Values of any field: points [..., 3] -> [..., 1].

    A layer list goes through `evaluate_network`; a `CompositeField` (e.g. an IDF) evaluates itself.
    create_graph asks a composite that differentiates internally to keep that derivative in the autograd
    graph (training); plain networks ignore it.
    """
    if isinstance(spec, CompositeField):
        return spec.evaluate(params, x, create_graph=create_graph)
    return evaluate_network(spec, params, x)


def igr_spec(width: int, layers: int, activation: str = "softplus", beta: float = 100.0,
             frequencies: int = 0, skip: bool = True, in_features: int = 3) -> NetworkSpec:
    """An IGR-style MLP: `layers` hidden layers of `width`, the encoded input concatenated
    back in before the middle hidden layer when `skip`, optional positional encoding.

    activation is "softplus" (with `beta`; IGR uses 100) or "relu" (with frequencies > 0
    this is the "ReLU+PE" network).
    """
    if activation not in ("softplus", "relu"):
        raise ValueError(f"activation must be 'softplus' or 'relu', got {activation!r}")
    act = LayerSpec("softplus", beta=beta) if activation == "softplus" else LayerSpec("relu")
    encoded = in_features + 2 * in_features * frequencies
    spec: list[LayerSpec] = [LayerSpec("fourier", frequencies=frequencies)] if frequencies else []
    skip_at = layers // 2 if skip and layers >= 2 else None
    n_in = encoded
    for i in range(layers):
        if i == skip_at:
            spec.append(LayerSpec("concat_input"))
            n_in += encoded
        n_out = width - encoded if skip_at is not None and i == skip_at - 1 else width
        spec += [LayerSpec("dense", n_in, n_out), act]
        n_in = n_out
    spec.append(LayerSpec("dense", n_in, 1))
    return tuple(spec)


def init_geometric_params(spec: NetworkSpec, radius: float, generator: torch.Generator,
                          in_features: int = 3) -> dict[str, torch.Tensor]:
    """Geometric initialisation (Atzmon & Lipman 2020), so the network starts as about |x| - radius.

    Hidden dense layers: W ~ N(0, 2 / n_out), b = 0. Last layer: W ~ N(sqrt(pi / n_in), 1e-5),
    b = -radius. Weights reading positional-encoding features (in the first layer and after
    a concat_input) start at zero, so only the raw coordinates drive the initial field.
    """
    dense = [i for i, layer in enumerate(spec) if layer.kind == "dense"]
    encoded_extra = sum(2 * in_features * l.frequencies for l in spec if l.kind == "fourier")
    params: dict[str, torch.Tensor] = {}
    for index in dense:
        layer = spec[index]
        shape = (layer.out_features, layer.in_features)
        if index == dense[-1]:
            mean = math.sqrt(math.pi / layer.in_features)
            weight = mean + 1e-5 * torch.randn(shape, generator=generator)
            bias = torch.full((layer.out_features,), -float(radius))
        else:
            weight = torch.randn(shape, generator=generator) * math.sqrt(2.0 / layer.out_features)
            bias = torch.zeros(layer.out_features)
            if encoded_extra and index == dense[0]:
                weight[:, in_features:] = 0.0
            if encoded_extra and index > 0 and spec[index - 1].kind == "concat_input":
                weight[:, -encoded_extra:] = 0.0
        params[f"{index}_weight"] = weight.float()
        params[f"{index}_bias"] = bias.float()
    return params


class FieldModule(nn.Module):
    """A trainable wrapper: parameters in a ParameterDict, forward = `evaluate_field` (keeping
    a composite field's internal derivatives in the graph whenever gradients are enabled)."""

    def __init__(self, spec: FieldSpec, params: Params):
        super().__init__()
        self.spec = spec if isinstance(spec, CompositeField) else tuple(spec)
        self.weights = nn.ParameterDict({k: nn.Parameter(v.clone()) for k, v in params.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return evaluate_field(self.spec, self.weights, x, create_graph=torch.is_grad_enabled())

    def params(self) -> dict[str, torch.Tensor]:
        """Detached float32 CPU copies of the parameters."""
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in self.weights.items()}


def device_dtype_of(params: Params) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of a field's parameters (of the first tensor)."""
    tensor = next(iter(params.values()))
    return tensor.device, tensor.dtype
