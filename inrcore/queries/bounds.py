"""Range bounds of a network as data (Sharp & Jacobson 2022): one interval rule and one affine rule per
layer kind, run over the same layer specs as exact evaluation.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from inrcore.fields.networks import (
    CompositeField,
    FieldSpec,
    LayerSpec,
    NetworkSpec,
    Params,
    fourier_angles,
    fourier_scales,
)
from inrcore.queries.arithmetic import (
    AffineForm,
    Interval,
    apply_linearisation,
    concat_forms,
    condense,
    cosine_bounds,
    cosine_linearisation,
    elu_linearisation,
    form_from_box,
    interval_of,
    relu_linearisation,
    scale_form,
    sine_bounds,
    sine_linearisation,
    softplus_linearisation,
    tanh_linearisation,
)


POSITIVE = 1
NEGATIVE = -1
UNKNOWN = 0
NONLINEAR_KINDS = frozenset({"sine", "relu", "softplus", "elu", "tanh", "fourier"})


def _times_weight(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [..., in] times weight^T, no bias.

    weight [out, in] -> [..., out]; or stacked weight [B, out, in] with x [B, ..., in]
    (any number of dims between B and in) -> [B, ..., out].
    """
    weight_t = weight.transpose(-1, -2)
    if weight.dim() == 3:
        weight_t = weight_t.reshape(weight.shape[0], *([1] * (x.dim() - 3)), *weight_t.shape[-2:])
    return torch.matmul(x, weight_t)


def _bias_for(bias: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bias [out] or stacked [B, out] shaped to broadcast against `like` [..., out] / [B, ..., out]."""
    if bias.dim() == 2:
        return bias.reshape(bias.shape[0], *([1] * (like.dim() - 2)), bias.shape[-1])
    return bias


def _interval_dense(layer: LayerSpec, index: int, params: Params, value: Interval) -> Interval:
    """Exact image of a box under W x + b, in centre/radius form: W c + b +- |W| r."""
    lower, upper = value
    weight, bias = params[f"{index}_weight"], params[f"{index}_bias"]
    centre, radius = (lower + upper) / 2, (upper - lower) / 2
    out_centre = _times_weight(centre, weight)
    out_centre = out_centre + _bias_for(bias, out_centre)
    out_radius = _times_weight(radius, weight.abs())
    return out_centre - out_radius, out_centre + out_radius


def _interval_sine(layer: LayerSpec, index: int, params: Params, value: Interval) -> Interval:
    a, b = layer.omega * value[0], layer.omega * value[1]
    return sine_bounds(torch.minimum(a, b), torch.maximum(a, b))


def _interval_relu(layer: LayerSpec, index: int, params: Params, value: Interval) -> Interval:
    return torch.relu(value[0]), torch.relu(value[1])


def _interval_softplus(layer: LayerSpec, index: int, params: Params, value: Interval) -> Interval:
    softplus = torch.nn.functional.softplus
    return softplus(value[0], beta=layer.beta), softplus(value[1], beta=layer.beta)


def _interval_elu(layer: LayerSpec, index: int, params: Params, value: Interval) -> Interval:
    elu = torch.nn.functional.elu  # increasing for alpha > 0
    return elu(value[0], alpha=layer.alpha), elu(value[1], alpha=layer.alpha)


def _interval_tanh(layer: LayerSpec, index: int, params: Params, value: Interval) -> Interval:
    return torch.tanh(value[0]), torch.tanh(value[1])  # increasing


def _interval_fourier(layer: LayerSpec, index: int, params: Params, value: Interval) -> Interval:
    """[x, sin(2^k pi x)..., cos(2^k pi x)...] on intervals (scales are positive)."""
    lower, upper = value
    if layer.frequencies == 0:
        return value
    scales = fourier_scales(layer.frequencies, lower)
    a, b = fourier_angles(lower, scales), fourier_angles(upper, scales)
    sin_lo, sin_hi = sine_bounds(a, b)
    cos_lo, cos_hi = cosine_bounds(a, b)
    return torch.cat([lower, sin_lo, cos_lo], dim=-1), torch.cat([upper, sin_hi, cos_hi], dim=-1)


INTERVAL_RULES: dict[str, Callable[[LayerSpec, int, Params, Interval], Interval]] = {
    "dense": _interval_dense,
    "sine": _interval_sine,
    "relu": _interval_relu,
    "softplus": _interval_softplus,
    "elu": _interval_elu,
    "tanh": _interval_tanh,
    "fourier": _interval_fourier,
}


def evaluate_interval(spec: NetworkSpec, params: Params, lower: torch.Tensor, upper: torch.Tensor) -> Interval:
    """Sound output bounds of the network over the box [lower, upper].

    Args:
        lower, upper: [..., in_features] (stacked params: [B, ..., in_features]).
    Returns:
        (lower, upper) of the outputs, [..., out_features].
    """
    value = (lower, upper)
    encoded = value
    for index, layer in enumerate(spec):
        if layer.kind == "concat_input":
            scale = 1.0 / math.sqrt(2.0)
            value = (torch.cat([value[0], encoded[0]], dim=-1) * scale,
                     torch.cat([value[1], encoded[1]], dim=-1) * scale)
            continue
        value = INTERVAL_RULES[layer.kind](layer, index, params, value)
        if layer.kind == "fourier" and index == 0:
            encoded = value
    return value


def _affine_dense(layer: LayerSpec, index: int, params: Params, form: AffineForm,
                  max_symbols: Optional[int] = None) -> AffineForm:
    """Exact on the symbols: W (c + sum C_i eps_i) + b = (W c + b) + sum (W C_i) eps_i; the error
    term becomes |W| error (each output's own term)."""
    weight, bias = params[f"{index}_weight"], params[f"{index}_bias"]
    centre = _times_weight(form.centre, weight)
    centre = centre + _bias_for(bias, centre)
    error = None if form.error is None else _times_weight(form.error, weight.abs())
    return AffineForm(centre, _times_weight(form.coeffs, weight), error)


def _affine_sine(layer: LayerSpec, index: int, params: Params, form: AffineForm,
                 max_symbols: Optional[int] = None) -> AffineForm:
    scaled = scale_form(form, layer.omega)
    return apply_linearisation(scaled, *sine_linearisation(*interval_of(scaled)), max_symbols)


def _affine_relu(layer: LayerSpec, index: int, params: Params, form: AffineForm,
                 max_symbols: Optional[int] = None) -> AffineForm:
    return apply_linearisation(form, *relu_linearisation(*interval_of(form)), max_symbols)


def _affine_softplus(layer: LayerSpec, index: int, params: Params, form: AffineForm,
                     max_symbols: Optional[int] = None) -> AffineForm:
    return apply_linearisation(form, *softplus_linearisation(*interval_of(form), layer.beta), max_symbols)


def _affine_elu(layer: LayerSpec, index: int, params: Params, form: AffineForm,
                max_symbols: Optional[int] = None) -> AffineForm:
    return apply_linearisation(form, *elu_linearisation(*interval_of(form), layer.alpha), max_symbols)


def _affine_tanh(layer: LayerSpec, index: int, params: Params, form: AffineForm,
                 max_symbols: Optional[int] = None) -> AffineForm:
    return apply_linearisation(form, *tanh_linearisation(*interval_of(form)), max_symbols)


def _affine_fourier(layer: LayerSpec, index: int, params: Params, form: AffineForm,
                    max_symbols: Optional[int] = None) -> AffineForm:
    """x passes through; 2^k pi x is linear; sin and cos each add their own new symbols (few: 6 d
    per octave, so they are built in full and `evaluate_affine` condenses afterwards)."""
    if layer.frequencies == 0:
        return form
    scales = fourier_scales(layer.frequencies, form.centre)
    error = None if form.error is None else fourier_angles(form.error, scales)
    angles = AffineForm(fourier_angles(form.centre, scales), fourier_angles(form.coeffs, scales), error)
    bounds = interval_of(angles)
    sines = apply_linearisation(angles, *sine_linearisation(*bounds))
    cosines = apply_linearisation(angles, *cosine_linearisation(*bounds))
    return concat_forms([form, sines, cosines], shared=form.n_symbols)


# Each rule maps (layer, its index, params, input form, max_symbols) to the output form.
AFFINE_RULES: dict[str, Callable[..., AffineForm]] = {
    "dense": _affine_dense,
    "sine": _affine_sine,
    "relu": _affine_relu,
    "softplus": _affine_softplus,
    "elu": _affine_elu,
    "tanh": _affine_tanh,
    "fourier": _affine_fourier,
}


def _new_symbols(layer: LayerSpec, width: int) -> int:
    """How many symbols a nonlinear layer appends to a form of `width` elements before condensing."""
    return 2 * layer.frequencies * width if layer.kind == "fourier" else width


def evaluate_affine(spec: NetworkSpec, params: Params, form: AffineForm,
                    max_symbols: Optional[int] = None) -> AffineForm:
    """Affine form of the network's outputs given an affine form of its inputs.

    Args:
        form: centre [..., in_features], coeffs [..., n, in_features].
        max_symbols: None keeps every symbol (full affine arithmetic: a nonlinear layer of
            width d adds d symbols, so a box costs about (n + d) times a point per layer). K
            keeps at most K symbols after every nonlinear layer, folding the rest into each
            element's own error term (`condense`); a box then costs about K + 2 points.
    Returns:
        AffineForm with centre [..., out_features].
    """
    encoded = form
    aligned = True  # encoded's symbols are the first symbols of form (none dropped since)
    for index, layer in enumerate(spec):
        if layer.kind == "concat_input":
            shared = encoded.n_symbols if aligned else 0
            form = scale_form(concat_forms([form, encoded], shared), 1.0 / math.sqrt(2.0))
            continue
        candidates = form.n_symbols + _new_symbols(layer, form.centre.shape[-1])
        form = AFFINE_RULES[layer.kind](layer, index, params, form, max_symbols)
        if max_symbols is not None and layer.kind in NONLINEAR_KINDS:
            form = condense(form, max_symbols)
            aligned = aligned and candidates <= max_symbols
        if layer.kind == "fourier" and index == 0:
            encoded, aligned = form, True
    return form


def bound_of(spec: FieldSpec, params: Params, centre: torch.Tensor, axes: torch.Tensor,
             mode: str = "affine", max_symbols: Optional[int] = None) -> Interval:
    """(lower, upper) [B, out_features] of a field over boxes {centre + sum_j t_j axes_j, |t_j| <= 1}.

    centre [B, 3], axes [B, k, 3] (any directions). Interval mode bounds the axis-aligned
    bounding box (radius sum_j |axes_j|); affine mode takes the box exactly (k symbols).
    A layer list is bounded directly; a composite field (`CompositeField.bound`, e.g. an IDF)
    combines the bounds of its networks, taken here in the same mode.
    """
    if mode not in ("affine", "interval"):
        raise ValueError(f"mode must be 'affine' or 'interval', got {mode!r}")
    if isinstance(spec, CompositeField):
        return spec.bound(params, centre, axes, lambda net, p, c, a: bound_of(net, p, c, a, mode, max_symbols))
    if mode == "interval":
        radius = axes.abs().sum(-2)
        return evaluate_interval(spec, params, centre - radius, centre + radius)
    return interval_of(evaluate_affine(spec, params, form_from_box(centre, axes), max_symbols))


def sign_of_bounds(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """POSITIVE where lower > 0, NEGATIVE where upper < 0, else UNKNOWN: [B] -> LongTensor [B]."""
    result = torch.full(lower.shape, UNKNOWN, dtype=torch.long, device=lower.device)
    result = torch.where(lower > 0, torch.full_like(result, POSITIVE), result)
    return torch.where(upper < 0, torch.full_like(result, NEGATIVE), result)


def range_bound(spec: FieldSpec, params: Params, centre: torch.Tensor, axes: torch.Tensor,
                mode: str = "affine", max_symbols: Optional[int] = None) -> torch.Tensor:
    """Sign of the field (first output) over each box: LongTensor [B] of POSITIVE / NEGATIVE / UNKNOWN."""
    lower, upper = bound_of(spec, params, centre, axes, mode, max_symbols)
    return sign_of_bounds(lower[..., 0], upper[..., 0])
