"""Interval and affine arithmetic over networks-as-data (see `inrcore.fields.networks`).

Sharp & Jacobson 2022, "Spelunking the deep": range analysis of a neural implicit field over
a box tells whether the box is surely outside (field > 0), surely inside (< 0), or unknown.

Two modes mirror `EXACT_RULES` of `inrcore.fields.networks`, one rule table each:

- interval mode (`INTERVAL_RULES`, `evaluate_interval`): a value is (lower, upper) [..., d];
- affine mode (`AFFINE_RULES`, `evaluate_affine`, after Comba & Stolfi 1993): a value is an
  `AffineForm` x = centre + sum_i coeffs[i] eps_i, eps_i in [-1, 1], with noise symbols shared
  across dimensions and layers. Each nonlinearity is replaced by a linear approximation
  alpha x + beta plus one new noise symbol per output element carrying its error bound gamma.

All rules are sound in exact arithmetic (every exact output of a point of the input set lies
in the bound); floating point rounding is not tracked. "concat_input" needs the network's
encoded input, so the two evaluate functions apply it themselves, as `evaluate_network` does.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch


Interval = tuple[torch.Tensor, torch.Tensor]


class AffineForm(NamedTuple):
    """x = centre + sum_i coeffs[..., i, :] * eps_i + error * delta, eps_i, delta_j in [-1, 1].

    centre: [..., d]; coeffs: [..., n_sym, d], symbols shared across elements and layers;
    error: None or [..., d] >= 0, a term of each element's own (element j's delta_j appears
    nowhere else). `condense` folds the symbols it drops into `error`; a dense layer maps it to
    |W| error, which forgets that outputs share those terms (sound, looser, and cheap: no new
    symbol per neuron).
    """

    centre: torch.Tensor
    coeffs: torch.Tensor
    error: Optional[torch.Tensor] = None

    @property
    def n_symbols(self) -> int:
        return self.coeffs.shape[-2]

    @property
    def radius(self) -> torch.Tensor:
        """Half-width of the form's range per element: sum_i |coeffs_i| + error, [..., d]."""
        radius = self.coeffs.abs().sum(-2)
        return radius if self.error is None else radius + self.error


# ----------------------------------------------------------------------------- shared helpers


def sine_bounds(lower: torch.Tensor, upper: torch.Tensor) -> Interval:
    """Sound range of sin over [lower, upper] (elementwise, same shapes).

    Endpoint values, widened to 1 / -1 where the interval contains a maximum pi/2 + 2 pi k /
    a minimum -pi/2 + 2 pi k; [-1, 1] where the interval spans at least 2 pi.
    """
    two_pi = 2.0 * math.pi
    s_lo, s_hi = torch.sin(lower), torch.sin(upper)
    low, high = torch.minimum(s_lo, s_hi), torch.maximum(s_lo, s_hi)
    wide = (upper - lower) >= two_pi
    next_max = math.pi / 2 + two_pi * torch.ceil((lower - math.pi / 2) / two_pi)
    next_min = -math.pi / 2 + two_pi * torch.ceil((lower + math.pi / 2) / two_pi)
    high = torch.where(wide | (next_max <= upper), torch.ones_like(high), high)
    low = torch.where(wide | (next_min <= upper), -torch.ones_like(low), low)
    return low, high


def cosine_bounds(lower: torch.Tensor, upper: torch.Tensor) -> Interval:
    """Sound range of cos over [lower, upper]: sin over [lower + pi/2, upper + pi/2]."""
    return sine_bounds(lower + math.pi / 2, upper + math.pi / 2)


# ----------------------------------------------------------------------------- interval mode


# ----------------------------------------------------------------------------- affine mode


def interval_of(form: AffineForm) -> Interval:
    """Range of an affine form: centre -+ radius, each [..., d]."""
    radius = form.radius
    return form.centre - radius, form.centre + radius


def form_from_interval(lower: torch.Tensor, upper: torch.Tensor) -> AffineForm:
    """The box [lower, upper] [..., d] as an affine form with d independent symbols [..., d, d]."""
    return AffineForm((lower + upper) / 2, torch.diag_embed((upper - lower) / 2))


def form_from_box(centre: torch.Tensor, axes: torch.Tensor) -> AffineForm:
    """The parallelepiped {centre + sum_j t_j axes_j, t_j in [-1, 1]} exactly: centre [..., d], axes [..., k, d]."""
    return AffineForm(centre, axes)


def concat_forms(forms: list[AffineForm], shared: int) -> AffineForm:
    """Concatenate forms along the last (feature) axis.

    The first `shared` symbols of every form are the same noise symbols; each form's remaining
    symbols are its own and get their own slots, so the result has
    shared + sum(n_symbols - shared) symbols. Error terms are concatenated (zeros for a form
    without one).
    """
    private = [form.n_symbols - shared for form in forms]
    total = shared + sum(private)
    parts, offset = [], shared
    for form, n_private in zip(forms, private):
        coeffs = form.coeffs
        head, tail = coeffs[..., :shared, :], coeffs[..., shared:, :]
        pad_shape = list(coeffs.shape)
        before = pad_shape.copy()
        before[-2] = offset - shared
        after = pad_shape.copy()
        after[-2] = total - offset - n_private
        parts.append(torch.cat([head, coeffs.new_zeros(before), tail, coeffs.new_zeros(after)], dim=-2))
        offset += n_private
    error = None
    if any(form.error is not None for form in forms):
        error = torch.cat([torch.zeros_like(form.centre) if form.error is None else form.error for form in forms], dim=-1)
    return AffineForm(torch.cat([form.centre for form in forms], dim=-1), torch.cat(parts, dim=-1), error)


def apply_linearisation(form: AffineForm, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor,
                        max_symbols: Optional[int] = None) -> AffineForm:
    """alpha x + beta with error gamma: one new symbol per output element carries gamma.

    alpha, beta, gamma: [..., d]. Without max_symbols the coeffs grow from [..., n, d] to
    [..., n + d, d]. With max_symbols = K, when n + d > K only the K largest of the n scaled
    symbols and the d new ones are kept (in their original order) and the others are folded
    into the error term, without building the [d, d] block of new symbols: the same result as
    appending them and calling `condense(form, K)`.
    """
    centre = alpha * form.centre + beta
    scaled = form.coeffs * alpha[..., None, :]
    error = None if form.error is None else form.error * alpha.abs()
    n, d = scaled.shape[-2], gamma.shape[-1]
    if max_symbols is None or n + d <= max_symbols:
        return AffineForm(centre, torch.cat([scaled, torch.diag_embed(gamma)], dim=-2), error)
    magnitude = torch.cat([scaled.abs().sum(-1), gamma], dim=-1)  # [..., n + d]
    kept = magnitude.topk(max_symbols, dim=-1).indices.sort(dim=-1).values  # [..., K]
    new_index = (kept - n).clamp(min=0)
    coeffs = torch.nn.functional.one_hot(new_index, d).to(gamma.dtype) * torch.gather(gamma, -1, new_index)[..., None]
    if n > 0:
        old_rows = torch.gather(scaled, -2, kept.clamp(max=n - 1)[..., None].expand(*kept.shape, d))
        coeffs = torch.where((kept < n)[..., None], old_rows, coeffs)
    dropped = torch.ones_like(magnitude, dtype=torch.bool).scatter(-1, kept, False)
    folded = (scaled.abs() * dropped[..., :n, None]).sum(-2) + gamma * dropped[..., n:]
    return AffineForm(centre, coeffs, folded if error is None else error + folded)


def relu_linearisation(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha, beta, gamma) [..., d] for relu over [lower, upper] (min-range, as in the paper).

    u <= 0: 0; l >= 0: identity; else alpha = u / (u - l), beta = gamma = -alpha l / 2.
    """
    zeros, ones = torch.zeros_like(lower), torch.ones_like(lower)
    straddle = (lower < 0) & (upper > 0)
    alpha = torch.where(straddle, upper / torch.where(straddle, upper - lower, ones), zeros)
    alpha = torch.where(lower >= 0, ones, alpha)
    gamma = torch.where(straddle, -alpha * lower / 2, zeros)
    return alpha, gamma, gamma


def softplus_linearisation(lower: torch.Tensor, upper: torch.Tensor, sharpness: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha, beta, gamma) [..., d] for softplus_sharpness over [lower, upper] (Chebyshev-style).

    alpha is the secant slope; g(x) = f(x) - alpha x is convex, so its maximum is at an
    endpoint, and the tangent at t (t = where f' = alpha, clamped into [l, u]; any t is sound)
    gives a lower bound f(t) - f'(t) t + (f'(t) - alpha) x minimised over the endpoints.
    beta, gamma are the middle and half-width of [min g, max g].
    """
    softplus = lambda x: torch.nn.functional.softplus(x, beta=sharpness)  # noqa: E731
    f_lo, f_hi = softplus(lower), softplus(upper)
    width = upper - lower
    narrow = width <= 1e-9 * (1.0 + lower.abs())
    centre = (lower + upper) / 2
    secant = (f_hi - f_lo) / torch.where(narrow, torch.ones_like(width), width)
    alpha = torch.where(narrow, torch.sigmoid(sharpness * centre), secant)
    tiny = torch.finfo(lower.dtype).eps
    p = alpha.clamp(tiny, 1.0 - tiny)
    t = torch.minimum(torch.maximum(torch.log(p / (1.0 - p)) / sharpness, lower), upper)
    slope_t = torch.sigmoid(sharpness * t)
    g_max = torch.maximum(f_lo - alpha * lower, f_hi - alpha * upper)
    tangent_offset = softplus(t) - slope_t * t
    g_min = torch.minimum(tangent_offset + (slope_t - alpha) * lower, tangent_offset + (slope_t - alpha) * upper)
    return alpha, (g_max + g_min) / 2, (g_max - g_min) / 2


def sine_error_range(lower: torch.Tensor, upper: torch.Tensor, alpha: torch.Tensor) -> Interval:
    """Exact range of g(x) = sin x - alpha x over [lower, upper], for intervals narrower than 2 pi.

    g is smooth, so its extremes lie at the endpoints or where g' = cos x - alpha = 0, i.e. at
    x = ±acos(alpha) + 2 pi k; an interval narrower than 2 pi holds at most one of each sign,
    found from the first k at or above the lower end (the next one is checked too, for an
    interval of width exactly 2 pi). All arguments [..., d] of one dtype, |alpha| <= 1.
    """
    two_pi = 2.0 * math.pi
    at_lower, at_upper = torch.sin(lower) - alpha * lower, torch.sin(upper) - alpha * upper
    low, high = torch.minimum(at_lower, at_upper), torch.maximum(at_lower, at_upper)
    turn = torch.acos(alpha.clamp(-1.0, 1.0))
    for base in (turn, -turn):
        first = base + two_pi * torch.ceil((lower - base) / two_pi)
        for x in (first, first + two_pi):
            inside = (x >= lower) & (x <= upper)
            value = torch.sin(x) - alpha * x
            low = torch.where(inside, torch.minimum(low, value), low)
            high = torch.where(inside, torch.maximum(high, value), high)
    return low, high


def sine_linearisation(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha, beta, gamma) [..., d] for sin over [lower, upper]: per element the best of three slopes.

    For each slope alpha, beta and gamma are the middle and half-width of the exact range of
    sin x - alpha x over the interval (`sine_error_range`), so gamma is the smallest error that
    slope allows. The slopes: the secant (the minimax line wherever sin keeps one curvature sign
    over the interval), cos at the centre (better across an inflection, where sin is nearly
    straight), and 0 (the interval bounds of sin; the only choice for intervals 2 pi or wider).
    Computed in float64, since sin x - alpha x cancels for large x, and returned in the inputs'
    dtype with the rounding of alpha and beta added to gamma.
    """
    dtype = lower.dtype
    lo, hi = lower.double(), upper.double()
    centre, width = (lo + hi) / 2, hi - lo
    narrow = width <= 1e-12 * (1.0 + centre.abs())
    secant = (torch.sin(hi) - torch.sin(lo)) / torch.where(narrow, torch.ones_like(width), width)
    secant = torch.where(narrow, torch.cos(centre), secant)
    s_low, s_high = sine_bounds(lo, hi)
    alpha, beta, gamma = torch.zeros_like(centre), (s_high + s_low) / 2, (s_high - s_low) / 2
    bounded = width < 2.0 * math.pi
    for slope in (secant, torch.cos(centre)):
        g_low, g_high = sine_error_range(lo, hi, slope)
        better = bounded & ((g_high - g_low) / 2 <= gamma)
        alpha = torch.where(better, slope, alpha)
        beta = torch.where(better, (g_high + g_low) / 2, beta)
        gamma = torch.where(better, (g_high - g_low) / 2, gamma)
    alpha_out, beta_out = alpha.to(dtype), beta.to(dtype)
    rounding = (alpha - alpha_out.double()).abs() * torch.maximum(lo.abs(), hi.abs()) + (beta - beta_out.double()).abs()
    gamma_out = (gamma + rounding).to(dtype)
    return alpha_out, beta_out, torch.nextafter(gamma_out, torch.full_like(gamma_out, math.inf))


def cosine_linearisation(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cos x = sin(x + pi/2): the sine linearisation shifted, beta corrected for the shift."""
    alpha, beta, gamma = sine_linearisation(lower + math.pi / 2, upper + math.pi / 2)
    return alpha, beta + alpha * (math.pi / 2), gamma


def elu_linearisation(lower: torch.Tensor, upper: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha, beta, gamma) [..., d] for elu (x for x > 0, scale (e^x - 1) otherwise) over [lower, upper].

    alpha is the secant slope (the derivative at the centre on a degenerate interval). The
    extremes of g(x) = elu(x) - alpha x lie among the endpoints, the kink at 0 when inside, and
    x* = log(alpha / scale) where g' = scale e^x - alpha vanishes on the exponential piece
    (g is convex there and linear for x > 0), so [min g, max g] is exact for any scale > 0.
    beta, gamma are its middle and half-width.
    """
    elu = lambda x: torch.nn.functional.elu(x, alpha=scale)  # noqa: E731
    f_lo, f_hi = elu(lower), elu(upper)
    width = upper - lower
    narrow = width <= 1e-9 * (1.0 + lower.abs())
    centre = (lower + upper) / 2
    slope_at_centre = torch.where(centre > 0, torch.ones_like(centre), scale * torch.exp(centre.clamp(max=0)))
    alpha = torch.where(narrow, slope_at_centre, (f_hi - f_lo) / torch.where(narrow, torch.ones_like(width), width))
    g = lambda x: elu(x) - alpha * x  # noqa: E731
    tiny = torch.finfo(lower.dtype).tiny
    critical = torch.log(alpha.clamp(min=tiny) / scale)
    zero = torch.zeros_like(lower)
    candidates = [(g(lower), torch.ones_like(narrow)), (g(upper), torch.ones_like(narrow)),
                  (g(zero), (lower < 0) & (upper > 0)),
                  (g(critical), (critical >= lower) & (critical <= torch.minimum(upper, zero)))]
    inf = torch.full_like(lower, math.inf)
    g_min = torch.stack([torch.where(ok, value, inf) for value, ok in candidates]).amin(0)
    g_max = torch.stack([torch.where(ok, value, -inf) for value, ok in candidates]).amax(0)
    return alpha, (g_max + g_min) / 2, (g_max - g_min) / 2


def tanh_linearisation(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha, beta, gamma) [..., d] for tanh over [lower, upper].

    alpha is the secant slope (the derivative at the centre on a degenerate interval). g(x) =
    tanh x - alpha x is smooth with g' = 1 - tanh² x - alpha, zero at x = ±atanh(sqrt(1 - alpha)),
    so the extremes of g lie among the endpoints and those two points when inside: [min g, max g]
    is exact. beta, gamma are its middle and half-width.
    """
    f_lo, f_hi = torch.tanh(lower), torch.tanh(upper)
    width = upper - lower
    narrow = width <= 1e-9 * (1.0 + lower.abs())
    centre = (lower + upper) / 2
    slope_at_centre = 1.0 - torch.tanh(centre) ** 2
    alpha = torch.where(narrow, slope_at_centre, (f_hi - f_lo) / torch.where(narrow, torch.ones_like(width), width))
    g = lambda x: torch.tanh(x) - alpha * x  # noqa: E731
    eps = torch.finfo(lower.dtype).eps
    root = torch.atanh(torch.sqrt((1.0 - alpha).clamp(min=0.0, max=1.0 - eps)))
    candidates = [(g(lower), torch.ones_like(narrow)), (g(upper), torch.ones_like(narrow)),
                  (g(root), (root >= lower) & (root <= upper)), (g(-root), (-root >= lower) & (-root <= upper))]
    inf = torch.full_like(lower, math.inf)
    g_min = torch.stack([torch.where(ok, value, inf) for value, ok in candidates]).amin(0)
    g_max = torch.stack([torch.where(ok, value, -inf) for value, ok in candidates]).amax(0)
    return alpha, (g_max + g_min) / 2, (g_max - g_min) / 2


def scale_form(form: AffineForm, factor: float) -> AffineForm:
    error = None if form.error is None else form.error * abs(factor)
    return AffineForm(form.centre * factor, form.coeffs * factor, error)


def condense(form: AffineForm, k: int) -> AffineForm:
    """Keep, per batch element, the k symbols with largest sum over d of |coeff| (in their
    original order) and fold the others into the error term: each element's own term grows by
    the sum of their |coeffs| (sound: the range per element is unchanged or wider).

    [..., n, d] -> [..., k, d] when n > k; otherwise the form is returned unchanged.
    """
    n, d = form.n_symbols, form.centre.shape[-1]
    if n <= k:
        return form
    magnitude = form.coeffs.abs()
    kept = magnitude.sum(-1).topk(k, dim=-1).indices.sort(dim=-1).values  # [..., k]
    coeffs = torch.gather(form.coeffs, -2, kept[..., None].expand(*kept.shape, d))
    dropped = torch.ones_like(magnitude[..., 0], dtype=torch.bool).scatter(-1, kept, False)
    rest = (magnitude * dropped[..., None]).sum(-2)  # [..., d]
    return AffineForm(form.centre, coeffs, rest if form.error is None else form.error + rest)


# ----------------------------------------------------------------------------- boxes


