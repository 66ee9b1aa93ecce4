"""The DeepSDF decoder as a network-as-data spec, its weight normalisation, and members as fields.

The decoder (Park et al. 2019) reads [z, x] (a latent code z [L] then the point x [3]) through
`layers` dense+ReLU layers, feeds [z, x] in again before layer `skip_at` (the project's
"concat_input" layer, which also scales the concatenation by 1/sqrt 2: the same family of
functions, the factor is learned away), and ends in a dense layer to one value and a tanh.

Training keeps every hidden dense layer weight-normalised: its parameters are a direction
"<i>_weight" [out, in] and a gain "<i>_gain" [out], the layer's weight being gain · row / ‖row‖.
`effective_params` turns them into plain dense weights, which is what is saved: a saved decoder is
an ordinary layer list evaluated, bounded and exported by the rules of `inrcore.fields`.

A member of the shape space is the decoder with its code fixed. The code enters only through the
first dense layer and the dense layer after "concat_input", so it folds into their biases
(`member_network`): the member is a plain 3 -> 1 network, usable wherever a fitted field is.
"""

from __future__ import annotations

import math

import torch

from inrcore.fields.networks import LayerSpec, NetworkSpec, Params, evaluate_network
from inrcore.shapespace.settings import DecoderConfig


def decoder_spec(config: DecoderConfig) -> NetworkSpec:
    """The layer list for `config`: input [L + 3], output [1].

    The layer before the skip narrows to width - (L + 3) so the concatenation is `width` wide, as
    in the authors' decoder. Raises ValueError when that width would not be positive.
    """
    inputs = config.latent + 3
    skip = config.skip_at if 0 < config.skip_at < config.layers else None
    if skip is not None and config.width <= inputs:
        raise ValueError(f"decoder width {config.width} must exceed latent + 3 = {inputs} when skip_at is used")
    spec: list[LayerSpec] = []
    n_in = inputs
    for i in range(config.layers):
        if i == skip:
            spec.append(LayerSpec("concat_input"))
            n_in += inputs
        n_out = config.width - inputs if skip is not None and i == skip - 1 else config.width
        spec += [LayerSpec("dense", n_in, n_out), LayerSpec("relu")]
        n_in = n_out
    spec += [LayerSpec("dense", n_in, 1), LayerSpec("tanh")]
    return tuple(spec)


def dense_indices(spec: NetworkSpec) -> list[int]:
    return [i for i, layer in enumerate(spec) if layer.kind == "dense"]


def init_decoder_params(spec: NetworkSpec, weight_norm: bool, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Linear layers' usual initialisation, W and b ~ U(-1/sqrt(n_in), 1/sqrt(n_in)), except the last
    layer (weights a tenth of that, bias 0), so outputs start well inside the loss's clamp band
    (outside it the clamped L1 has no gradient); with `weight_norm`, every dense layer but the last
    also gets a gain equal to its rows' norms (so the decoder starts as the same function either
    way). float32 on the CPU."""
    params: dict[str, torch.Tensor] = {}
    dense = dense_indices(spec)
    for index in dense:
        layer = spec[index]
        bound = 1.0 / math.sqrt(layer.in_features)
        weight = (torch.rand((layer.out_features, layer.in_features), generator=generator) * 2 - 1) * bound
        params[f"{index}_weight"] = weight
        params[f"{index}_bias"] = (torch.rand((layer.out_features,), generator=generator) * 2 - 1) * bound
        if index == dense[-1]:  # start near 0: the clamped loss has no gradient where |output| > clamp
            params[f"{index}_weight"] = weight * 0.1
            params[f"{index}_bias"] = torch.zeros(layer.out_features)
        if weight_norm and index != dense[-1]:
            params[f"{index}_gain"] = weight.norm(dim=1)
    return params


def effective_params(spec: NetworkSpec, params: Params) -> dict[str, torch.Tensor]:
    """Plain dense weights: "<i>_weight" = gain · weight / ‖weight row‖ where a gain exists
    (differentiable: training evaluates through it). Other tensors pass through."""
    out = {name: value for name, value in params.items() if not name.endswith("_gain")}
    for index in dense_indices(spec):
        gain = params.get(f"{index}_gain")
        if gain is not None:
            weight = params[f"{index}_weight"]
            out[f"{index}_weight"] = weight * (gain / weight.norm(dim=1).clamp(min=1e-12))[:, None]
    return out


def decoder_values(spec: NetworkSpec, params: Params, codes: torch.Tensor, points: torch.Tensor,
                   dropout: float = 0.0, training: bool = False) -> torch.Tensor:
    """Decoder outputs for points of several shapes.

    Args:
        params: weight-normalised or plain (see `effective_params`).
        codes: [B, L], one per shape.
        points: [B, N, 3].
        dropout: probability of zeroing an activation, applied after every ReLU when `training`.
    Returns:
        values [B, N] in (-1, 1).
    """
    weights = effective_params(spec, params)
    inputs = torch.cat([codes[:, None, :].expand(-1, points.shape[1], -1), points], dim=-1)
    hook = None
    if training and dropout > 0:
        hook = lambda x: torch.nn.functional.dropout(x, dropout, training=True)  # noqa: E731
    return evaluate_network(spec, weights, inputs, after_activation=hook)[..., 0]


def member_network(spec: NetworkSpec, params: Params, code: torch.Tensor) -> tuple[NetworkSpec, dict[str, torch.Tensor]]:
    """The member of code `code` [L] as a plain network on points [..., 3] -> [..., 1].

    With inputs [z, x], the first dense layer is W_z z + W_x x + b: it keeps W_x and takes
    b + W_z z as its bias. After "concat_input" the dense layer reads [h, z, x] / sqrt 2: it keeps
    the columns of h and x and adds W_z z / sqrt 2 to its bias. The result evaluates to the same
    values as the decoder at that code (to rounding), and goes through every field tool unchanged.
    """
    weights = {k: v.detach() for k, v in effective_params(spec, params).items()}
    code = code.detach().to(next(iter(weights.values())).dtype).reshape(-1)
    latent = code.shape[0]
    first = dense_indices(spec)[0]
    if spec[first].in_features != latent + 3:
        raise ValueError(f"code of length {latent} does not match the decoder's input of {spec[first].in_features}")
    new_spec = list(spec)
    new_params: dict[str, torch.Tensor] = {}
    for index, layer in enumerate(spec):
        if layer.kind != "dense":
            continue
        weight, bias = weights[f"{index}_weight"], weights[f"{index}_bias"]
        if index == first:
            bias = bias + weight[:, :latent] @ code
            weight = weight[:, latent:]
            new_spec[index] = LayerSpec("dense", 3, layer.out_features)
        elif index > 0 and spec[index - 1].kind == "concat_input":
            hidden = layer.in_features - latent - 3
            bias = bias + weight[:, hidden:hidden + latent] @ code / math.sqrt(2.0)
            weight = torch.cat([weight[:, :hidden], weight[:, hidden + latent:]], dim=1)
            new_spec[index] = LayerSpec("dense", hidden + 3, layer.out_features)
        new_params[f"{index}_weight"] = weight.contiguous()
        new_params[f"{index}_bias"] = bias.contiguous()
    return tuple(new_spec), new_params
