import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inrcore.fields.build import network_for
from inrcore.fields.networks import EXACT_RULES, LayerSpec, evaluate_network
from inrcore.fields.settings import NetworkConfig
from inrcore.queries.arithmetic import AffineForm, condense, interval_of
from inrcore.queries.bounds import (
    AFFINE_RULES,
    INTERVAL_RULES,
    NEGATIVE,
    POSITIVE,
    UNKNOWN,
    bound_of,
    evaluate_affine,
    evaluate_interval,
    range_bound,
)


QUICK = settings(max_examples=50, deadline=None)
D = torch.float64


def _interval(spec, params, lo, hi):
    return evaluate_interval(spec, params, torch.tensor(lo, dtype=D), torch.tensor(hi, dtype=D))


def test_tables_cover_the_exact_rules():
    assert set(INTERVAL_RULES) == set(EXACT_RULES) == set(AFFINE_RULES)


def test_dense_interval_by_hand():
    spec = (LayerSpec("dense", 2, 2),)
    params = {"0_weight": torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=D), "0_bias": torch.tensor([1.0, 0.0], dtype=D)}
    lo, hi = _interval(spec, params, [0.0, -1.0], [1.0, 1.0])
    assert lo.tolist() == pytest.approx([-1.0, 0.0])
    assert hi.tolist() == pytest.approx([4.0, 0.5])


def test_unary_intervals_by_hand():
    lo, hi = _interval((LayerSpec("relu"),), {}, [-1.0, 0.5], [2.0, 1.0])
    assert lo.tolist() == [0.0, 0.5] and hi.tolist() == [2.0, 1.0]
    lo, hi = _interval((LayerSpec("softplus", beta=1.0),), {}, [0.0], [1.0])
    assert lo.item() == pytest.approx(math.log(2.0)) and hi.item() == pytest.approx(math.log(1 + math.e))
    sine = (LayerSpec("sine", omega=1.0),)
    lo, hi = _interval(sine, {}, [0.0, 0.0, -4.0, math.pi], [math.pi, 0.5, 4.0, 2 * math.pi])
    assert lo.tolist() == pytest.approx([0.0, 0.0, -1.0, -1.0], abs=1e-12)
    assert hi.tolist() == pytest.approx([1.0, math.sin(0.5), 1.0, 0.0], abs=1e-12)
    lo, hi = _interval((LayerSpec("sine", omega=2.0),), {}, [0.0], [math.pi / 2])  # sin over [0, pi]
    assert (lo.item(), hi.item()) == pytest.approx((0.0, 1.0), abs=1e-12)


def test_fourier_interval_by_hand():
    lo, hi = _interval((LayerSpec("fourier", frequencies=1),), {}, [0.0], [0.5])
    assert lo.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert hi.tolist() == pytest.approx([0.5, 1.0, 1.0], abs=1e-12)


def test_affine_relu_by_hand():
    form = AffineForm(torch.tensor([0.0], dtype=D), torch.tensor([[1.0]], dtype=D))
    out = evaluate_affine((LayerSpec("relu"),), {}, form)
    assert out.centre.tolist() == pytest.approx([0.25])
    assert out.coeffs.flatten().tolist() == pytest.approx([0.5, 0.25])
    lo, hi = interval_of(out)
    assert (lo.item(), hi.item()) == pytest.approx((-0.5, 1.0))


def test_affine_shares_symbols():
    # x - x through concat_input and a dense layer is exactly 0 in affine mode, not in interval mode.
    spec = (LayerSpec("concat_input"), LayerSpec("dense", 2, 1))
    params = {"1_weight": torch.tensor([[1.0, -1.0]], dtype=D), "1_bias": torch.zeros(1, dtype=D)}
    lo, hi = bound_of(spec, params, torch.zeros(1, 1, dtype=D), torch.ones(1, 1, 1, dtype=D))
    assert lo.item() == pytest.approx(0.0) and hi.item() == pytest.approx(0.0)
    lo, hi = bound_of(spec, params, torch.zeros(1, 1, dtype=D), torch.ones(1, 1, 1, dtype=D), mode="interval")
    assert hi.item() - lo.item() == pytest.approx(2 * math.sqrt(2.0))


def _single_layer(kind):
    """A one-layer network of `kind` on 3-d inputs, with float64 params."""
    g = torch.Generator().manual_seed(1)
    if kind == "dense":
        return (LayerSpec("dense", 3, 5),), {"0_weight": torch.randn(5, 3, generator=g, dtype=D),
                                             "0_bias": torch.randn(5, generator=g, dtype=D)}
    layer = {"sine": LayerSpec("sine", omega=3.0), "relu": LayerSpec("relu"),
             "softplus": LayerSpec("softplus", beta=10.0), "softplus100": LayerSpec("softplus", beta=100.0),
             "elu": LayerSpec("elu"), "elu_half": LayerSpec("elu", alpha=0.5), "elu_two": LayerSpec("elu", alpha=2.0),
             "tanh": LayerSpec("tanh"), "fourier": LayerSpec("fourier", frequencies=3), "concat_input": LayerSpec("concat_input")}[kind]
    return (layer,), {}


def _small_network(kind, perturb=0.3):
    g = torch.Generator().manual_seed(2)
    config = {"siren": NetworkConfig(kind="siren", width=12, layers=2, omega_first=10.0, omega_hidden=10.0),
              "igr": NetworkConfig(kind="igr", width=12, layers=2, beta=10.0),
              "relu-pe": NetworkConfig(kind="relu-pe", width=16, layers=2, frequencies=1),
              "elu": NetworkConfig(kind="igr", width=12, layers=2)}[kind]
    spec, params = network_for(config, g)
    if kind == "elu":  # the igr layout with ELU activations
        spec = tuple(LayerSpec("elu", alpha=0.7) if layer.kind == "softplus" else layer for layer in spec)
    params = {k: v.double() for k, v in params.items()}
    # Perturb the geometric init so the encoding's weights are not zero and the field is not trivial.
    params = {k: v + perturb * torch.randn(v.shape, generator=g, dtype=D) for k, v in params.items()}
    return spec, params


def _random_boxes(seed, scale, k, batch=4):
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, 3, generator=g, dtype=D) * 2 - 1
    axes = torch.randn(batch, k, 3, generator=g, dtype=D) * scale * torch.rand(batch, k, 1, generator=g, dtype=D)
    t = torch.rand(batch, 200, k, generator=g, dtype=D) * 2 - 1
    t[:, :8] = t[:, :8].sign()  # some corners
    points = centre[:, None, :] + torch.einsum("bnk,bkd->bnd", t, axes)
    return centre, axes, points


def _assert_sound(spec, params, seed, scale, k, mode, max_symbols=None):
    centre, axes, points = _random_boxes(seed, scale, k)
    lo, hi = bound_of(spec, params, centre, axes, mode=mode, max_symbols=max_symbols)
    values = evaluate_network(spec, params, points)
    assert lo.shape == hi.shape == values[:, 0].shape
    assert bool((values >= lo[:, None] - 1e-5).all()), (values - lo[:, None]).min()
    assert bool((values <= hi[:, None] + 1e-5).all()), (hi[:, None] - values).min()


boxes = dict(seed=st.integers(0, 10**6), scale=st.sampled_from([1e-3, 0.05, 0.3, 1.0, 5.0]), k=st.integers(1, 3))


@pytest.mark.parametrize("mode", ["interval", "affine"])
@pytest.mark.parametrize("kind", ["dense", "sine", "relu", "softplus", "softplus100", "elu", "elu_half", "elu_two",
                                  "tanh", "fourier", "concat_input"])
@QUICK
@given(**boxes)
def test_single_layers_are_sound(kind, mode, seed, scale, k):
    spec, params = _single_layer(kind)
    _assert_sound(spec, params, seed, scale, k, mode)


@pytest.mark.parametrize("mode,max_symbols", [("interval", None), ("affine", None), ("affine", 4), ("affine", 0)])
@pytest.mark.parametrize("kind", ["siren", "igr", "relu-pe", "elu"])
@QUICK
@given(**boxes)
def test_networks_are_sound(kind, mode, max_symbols, seed, scale, k):
    spec, params = _small_network(kind)
    _assert_sound(spec, params, seed, scale, k, mode, max_symbols)


@QUICK
@given(seed=st.integers(0, 10**6), n=st.integers(1, 12), k=st.integers(1, 6))
def test_condense_is_sound_and_small(seed, n, k):
    g = torch.Generator().manual_seed(seed)
    form = AffineForm(torch.randn(3, 4, generator=g, dtype=D), torch.randn(3, n, 4, generator=g, dtype=D))
    small = condense(form, k)
    assert small.n_symbols == min(n, k)
    assert (small.error is None) == (n <= k)
    assert torch.equal(small.centre, form.centre)
    assert bool((small.radius >= form.radius - 1e-12).all())
    # Any eps assignment of the original is reproduced by some eps of the condensed form: in particular
    # the condensed range contains the original range (checked above) and points sampled from it.
    eps = torch.rand(3, 50, n, generator=g, dtype=D) * 2 - 1
    points = form.centre[:, None] + torch.einsum("bmn,bnd->bmd", eps, form.coeffs)
    lo, hi = interval_of(small)
    assert bool((points >= lo[:, None] - 1e-12).all() and (points <= hi[:, None] + 1e-12).all())


def test_affine_is_tighter_than_interval_on_small_boxes():
    spec, params = _small_network("siren", perturb=0.0)
    centre, axes, _ = _random_boxes(0, 0.01, 3, batch=64)
    a_lo, a_hi = bound_of(spec, params, centre, axes, mode="affine")
    i_lo, i_hi = bound_of(spec, params, centre, axes, mode="interval")
    ratio = ((a_hi - a_lo) / (i_hi - i_lo)).mean().item()
    assert ratio < 0.5, ratio
    c_lo, c_hi = bound_of(spec, params, centre, axes, mode="affine", max_symbols=4)
    assert ((c_hi - c_lo) / (i_hi - i_lo)).mean().item() < 1.0  # condensed forms still beat intervals


@pytest.mark.parametrize("mode", ["interval", "affine"])
def test_range_bound_on_a_plane(mode):
    spec = (LayerSpec("dense", 3, 1),)
    params = {"0_weight": torch.tensor([[1.0, 0.0, 0.0]]), "0_bias": torch.tensor([-0.3])}
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    rotated = torch.tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) * 0.2
    centre = torch.tensor([[-0.5, 0.0, 0.0], [0.8, 0.1, 0.0], [0.3, 0.0, 0.2], [0.6, 0.0, 0.0], [0.35, 0.0, 0.0],
                           [0.0, 0.0, 0.0]])
    axes = torch.stack([torch.eye(3) * 0.1, torch.eye(3) * 0.1, torch.eye(3) * 0.1, rotated, rotated,
                        torch.eye(3) * 0.25])
    signs = range_bound(spec, params, centre, axes, mode=mode)
    assert signs.dtype == torch.long
    assert signs.tolist() == [NEGATIVE, POSITIVE, UNKNOWN, POSITIVE, UNKNOWN, NEGATIVE]
    flat = range_bound(spec, params, centre[:2], axes[:2, :2], mode=mode)  # k = 2 axes
    assert flat.tolist() == [NEGATIVE, POSITIVE]


def test_bound_of_rejects_unknown_mode():
    with pytest.raises(ValueError):
        bound_of((LayerSpec("relu"),), {}, torch.zeros(1, 3), torch.zeros(1, 1, 3), mode="taylor")


@pytest.mark.parametrize("mode", ["interval", "affine"])
def test_stacked_params_match_one_network_at_a_time(mode):
    from inrcore.fields.networks import stack_params

    nets = [_small_network(kind="igr", perturb=p) for p in (0.0, 0.2)]
    spec = nets[0][0]
    stacked = stack_params([params for _, params in nets])
    g = torch.Generator().manual_seed(3)
    centre = torch.rand(2, 5, 3, generator=g, dtype=D)
    axes = torch.randn(2, 5, 2, 3, generator=g, dtype=D) * 0.1
    lo, hi = bound_of(spec, stacked, centre, axes, mode=mode)
    for b, (_, params) in enumerate(nets):
        lo_b, hi_b = bound_of(spec, params, centre[b], axes[b], mode=mode)
        assert torch.allclose(lo[b], lo_b) and torch.allclose(hi[b], hi_b)


def test_float32_inputs_stay_float32():
    spec, params = _small_network("siren", perturb=0.0)
    params = {k: v.float() for k, v in params.items()}
    lo, hi = bound_of(spec, params, torch.zeros(2, 3), torch.full((2, 3, 3), 0.01), mode="affine", max_symbols=6)
    assert lo.dtype == torch.float32 and bool((lo <= hi).all())
    assert range_bound(spec, params, torch.zeros(2, 3), torch.full((2, 3, 3), 0.01)).shape == (2,)


def test_elu_linearisation_by_hand():
    # elu over [-1, 1]: secant slope s = (1 - (e^-1 - 1)) / 2; g = elu - s x is s - 1 + 1/e... at both
    # ends (1 - s), 0 at the kink, and smallest at x* = log s where g = s - 1 - s log s.
    from inrcore.queries.arithmetic import elu_linearisation

    s = (2 - math.exp(-1)) / 2
    g_min, g_max = s - 1 - s * math.log(s), 1 - s
    alpha, beta, gamma = elu_linearisation(torch.tensor([-1.0], dtype=D), torch.tensor([1.0], dtype=D), 1.0)
    assert alpha.item() == pytest.approx(s)
    assert beta.item() == pytest.approx((g_max + g_min) / 2)
    assert gamma.item() == pytest.approx((g_max - g_min) / 2)
    # On [0.5, 2] elu is the identity: exact, no error.
    alpha, beta, gamma = elu_linearisation(torch.tensor([0.5], dtype=D), torch.tensor([2.0], dtype=D), 1.0)
    assert (alpha.item(), beta.item(), gamma.item()) == pytest.approx((1.0, 0.0, 0.0))


def test_tanh_linearisation_by_hand():
    # tanh over [-1, 1]: secant slope s = tanh 1; g = tanh x - s x is 0 at both ends and extreme at
    # x* = atanh(sqrt(1 - s)), g(x*) = sqrt(1 - s) - s x* (max), odd, so beta = 0, gamma = g(x*).
    from inrcore.queries.arithmetic import tanh_linearisation

    s = math.tanh(1.0)
    x_star = math.atanh(math.sqrt(1 - s))
    g_star = math.tanh(x_star) - s * x_star
    alpha, beta, gamma = tanh_linearisation(torch.tensor([-1.0], dtype=D), torch.tensor([1.0], dtype=D))
    assert alpha.item() == pytest.approx(s)
    assert beta.item() == pytest.approx(0.0, abs=1e-12)
    assert gamma.item() == pytest.approx(g_star)
    # On [0.5, 2] (concave): the roots lie outside but for x*, g_max at x*, g_min at the ends (equal).
    s = (math.tanh(2.0) - math.tanh(0.5)) / 1.5
    x_star = math.atanh(math.sqrt(1 - s))
    g_ends = math.tanh(0.5) - s * 0.5
    alpha, beta, gamma = tanh_linearisation(torch.tensor([0.5], dtype=D), torch.tensor([2.0], dtype=D))
    g_max = math.tanh(x_star) - s * x_star
    assert (alpha.item(), beta.item(), gamma.item()) == pytest.approx((s, (g_max + g_ends) / 2, (g_max - g_ends) / 2))


@QUICK
@given(seed=st.integers(0, 10**6), n=st.integers(0, 6), k=st.integers(0, 9))
def test_fused_condensing_equals_appending_then_condensing(seed, n, k):
    from inrcore.queries.arithmetic import apply_linearisation

    g = torch.Generator().manual_seed(seed)
    form = AffineForm(torch.randn(2, 5, generator=g, dtype=D), torch.randn(2, n, 5, generator=g, dtype=D),
                      torch.rand(2, 5, generator=g, dtype=D))
    alpha, beta, gamma = torch.randn(3, 2, 5, generator=g, dtype=D)
    gamma = gamma.abs()
    fused = apply_linearisation(form, alpha, beta, gamma, max_symbols=k)
    full = condense(apply_linearisation(form, alpha, beta, gamma), k)
    assert torch.allclose(fused.centre, full.centre)
    assert torch.allclose(fused.coeffs, full.coeffs)
    assert torch.allclose(fused.radius, full.radius)


def _small_idf(seed=4):
    from inrcore.fields.build import idf_spec_for
    from inrcore.fields.idf import init_idf_params

    config = NetworkConfig(kind="idf", width=12, layers=2, idf_omega_base=3.0, idf_omega_displacement=8.0,
                           idf_max_displacement=0.1, idf_nu=0.2)
    spec = idf_spec_for(config)
    params = {k: v.double() for k, v in init_idf_params(spec, torch.Generator().manual_seed(seed)).items()}
    return spec, params


@pytest.mark.parametrize("mode,max_symbols", [("interval", None), ("affine", None), ("affine", 3)])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.sampled_from([1e-3, 0.05, 0.3]), k=st.integers(1, 3))
def test_idf_bounds_are_sound(mode, max_symbols, seed, scale, k):
    from inrcore.fields.networks import evaluate_field

    spec, params = _small_idf()
    centre, axes, points = _random_boxes(seed, scale, k)
    lo, hi = bound_of(spec, params, centre, axes, mode=mode, max_symbols=max_symbols)
    values = evaluate_field(spec, params, points)
    assert bool((values >= lo[:, None] - 1e-6).all()) and bool((values <= hi[:, None] + 1e-6).all())


def test_idf_bound_grows_the_base_bound_by_the_displacement():
    # With the displacement network's output zeroed, d = 0 and the IDF bound is the base's; with it,
    # the bound contains the base's and is wider near the base surface.
    from inrcore.fields.idf import BASE, part_params

    spec, params = _small_idf()
    centre = torch.rand(64, 3, generator=torch.Generator().manual_seed(1), dtype=D) * 2 - 1
    axes = torch.eye(3, dtype=D).expand(64, 3, 3) * 0.01
    b_lo, b_hi = bound_of(spec.base, part_params(params, BASE), centre, axes)
    lo, hi = bound_of(spec, params, centre, axes)
    assert bool((lo <= b_lo + 1e-12).all() and (hi >= b_hi - 1e-12).all())
    assert bool(((hi - lo) > 1.5 * (b_hi - b_lo)).any())
    last = max(int(name.split("_")[1]) for name in params if name.startswith("displacement_"))
    flat = {**params, f"displacement_{last}_weight": torch.zeros_like(params[f"displacement_{last}_weight"]),
            f"displacement_{last}_bias": torch.zeros_like(params[f"displacement_{last}_bias"])}
    lo, hi = bound_of(spec, flat, centre, axes)
    assert torch.allclose(lo, b_lo) and torch.allclose(hi, b_hi)


def test_sine_linearisation_by_hand():
    from inrcore.queries.arithmetic import sine_error_range, sine_linearisation

    # sin over [0, pi/2]: the secant slope 2/pi; sin x - 2x/pi is 0 at both ends and largest where
    # cos x = 2/pi, at sqrt(1 - 4/pi^2) - (2/pi) acos(2/pi) = 0.2105; the line sits half-way.
    top = math.sqrt(1 - 4 / math.pi ** 2) - 2 / math.pi * math.acos(2 / math.pi)
    alpha, beta, gamma = sine_linearisation(torch.tensor([0.0], dtype=D), torch.tensor([math.pi / 2], dtype=D))
    assert (alpha.item(), beta.item(), gamma.item()) == pytest.approx((2 / math.pi, top / 2, top / 2), rel=1e-12)
    # The slope cos(pi/4) would do worse there: g from 1 - pi/(2 sqrt 2) at pi/2 up to (1 - pi/4)/sqrt 2 at pi/4.
    low, high = sine_error_range(torch.tensor([0.0], dtype=D), torch.tensor([math.pi / 2], dtype=D),
                                 torch.tensor([math.sqrt(0.5)], dtype=D))
    assert (low.item(), high.item()) == pytest.approx((1 - math.pi / (2 * math.sqrt(2)), (1 - math.pi / 4) / math.sqrt(2)))
    assert (high - low).item() / 2 > top / 2
    # Over a whole period or more only the constant line is sound: sin in [-1, 1].
    alpha, beta, gamma = sine_linearisation(torch.tensor([1.0], dtype=D), torch.tensor([1.0 + 7.0], dtype=D))
    assert (alpha.item(), beta.item(), gamma.item()) == pytest.approx((0.0, 0.0, 1.0), abs=1e-15)
    # A point interval: the tangent, exact up to rounding.
    alpha, beta, gamma = sine_linearisation(torch.tensor([0.3], dtype=D), torch.tensor([0.3], dtype=D))
    assert alpha.item() == pytest.approx(math.cos(0.3)) and gamma.item() < 1e-15


@QUICK
@given(lower=st.floats(-60.0, 60.0), width=st.floats(0.0, 8.0))
def test_sine_linearisation_is_sound_and_no_looser_than_taylor(lower, width):
    from inrcore.queries.arithmetic import sine_linearisation

    lo, hi = torch.tensor([lower], dtype=torch.float32), torch.tensor([lower + width], dtype=torch.float32)
    alpha, beta, gamma = sine_linearisation(lo, hi)
    x = torch.linspace(float(lo), float(hi), 2001, dtype=D)
    error = (torch.sin(x) - alpha.double() * x - beta.double()).abs().max().item()
    assert error <= gamma.item() * (1 + 1e-6) + 1e-7
    # never looser than the Taylor line at the centre with the Lagrange remainder r^2/2, up to the
    # float32 rounding of alpha and beta (about an ulp of |x|)
    assert gamma.item() <= (width / 2) ** 2 / 2 + 4e-7 * (1 + abs(lower) + width)
