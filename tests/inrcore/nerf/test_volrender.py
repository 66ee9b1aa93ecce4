"""Volume rendering against values worked by hand, and the packed layout against the padded one."""

from __future__ import annotations

import math

import pytest
import torch

from inrcore.nerf.volrender import (
    accumulate_along_rays,
    accumulate_along_rays_packed,
    composite_on_background,
    importance_samples,
    intervals_from_samples,
    render_transmittance_from_density,
    render_transmittance_from_density_packed,
    render_weight_from_alpha,
    render_weight_from_density,
    render_weight_from_density_packed,
    stratified_intervals,
)


LN2 = math.log(2.0)


def _unit_intervals(n_rays: int, n_samples: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Intervals [i, i + 1] for i < n_samples on every ray: [R, S] each."""
    starts = torch.arange(n_samples, dtype=dtype).expand(n_rays, n_samples).contiguous()
    return starts, starts + 1.0


# ---------------------------------------------------------------- sampling along rays


def test_stratified_intervals_without_perturbation_are_equal_bins_with_centres():
    near, far = torch.tensor([2.0, 0.0]), torch.tensor([6.0, 1.0])
    t_starts, t_ends, t_mids = stratified_intervals(near, far, 4, perturb=False)
    assert torch.allclose(t_starts, torch.tensor([[2.0, 3.0, 4.0, 5.0], [0.0, 0.25, 0.5, 0.75]]))
    assert torch.allclose(t_ends, torch.tensor([[3.0, 4.0, 5.0, 6.0], [0.25, 0.5, 0.75, 1.0]]))
    assert torch.allclose(t_mids, torch.tensor([[2.5, 3.5, 4.5, 5.5], [0.125, 0.375, 0.625, 0.875]]))


def test_stratified_intervals_with_perturbation_stay_in_their_bins_and_are_reproducible():
    near, far = torch.full((100,), 2.0), torch.full((100,), 6.0)
    t_starts, t_ends, t_mids = stratified_intervals(near, far, 8, True, torch.Generator().manual_seed(3))
    assert torch.all(t_mids >= t_starts) and torch.all(t_mids <= t_ends)
    assert torch.allclose(t_starts[:, 0], near) and torch.allclose(t_ends[:, -1], far)
    # the points are spread over their bins, not stuck at the centres
    offsets = (t_mids - t_starts) / (t_ends - t_starts)
    assert offsets.min() < 0.05 and offsets.max() > 0.95
    again = stratified_intervals(near, far, 8, True, torch.Generator().manual_seed(3))[2]
    other = stratified_intervals(near, far, 8, True, torch.Generator().manual_seed(4))[2]
    assert torch.equal(t_mids, again)
    assert not torch.equal(t_mids, other)


def test_stratified_intervals_reject_no_samples():
    with pytest.raises(ValueError, match="n_samples"):
        stratified_intervals(torch.zeros(1), torch.ones(1), 0, False)


def test_importance_samples_with_all_weight_in_one_bin_fall_in_that_bin():
    edges = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    weights = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    for perturb in (False, True):
        t = importance_samples(edges, weights, 64, perturb, torch.Generator().manual_seed(0))
        assert t.shape == (1, 64)
        assert torch.all(t >= 2.0) and torch.all(t <= 3.0)
        assert torch.all(t[:, 1:] >= t[:, :-1])


def test_importance_samples_deterministic_are_the_strata_centres_of_the_cdf():
    # equal weights over [0, 4]: the cdf is t / 4, so the deterministic u_k = (k + 1/2) / n give
    # t_k = 4 (k + 1/2) / n
    edges = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    t = importance_samples(edges, torch.ones(1, 4), 4, perturb=False)
    assert torch.allclose(t, torch.tensor([[0.5, 1.5, 2.5, 3.5]]))
    # weights 3 and 1 on two bins of [0, 2]: three quarters of the samples in the first bin
    t = importance_samples(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[3.0, 1.0]]), 4, perturb=False)
    # u = 1/8, 3/8, 5/8 in the first bin (cdf 3/4 at t = 1: t = u * 4/3); u = 7/8 at t = 1 + (7/8 - 3/4) * 4
    assert torch.allclose(t, torch.tensor([[1 / 6, 0.5, 5 / 6, 1.5]]), atol=1e-4)


def test_importance_samples_random_are_reproducible_sorted_and_in_range():
    gen = torch.Generator().manual_seed(1)
    edges = torch.sort(torch.rand(50, 17, generator=gen) * 4.0 + 2.0, dim=-1).values
    weights = torch.rand(50, 16, generator=gen)
    a = importance_samples(edges, weights, 32, True, torch.Generator().manual_seed(7))
    b = importance_samples(edges, weights, 32, True, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.all(a[:, 1:] >= a[:, :-1])
    assert torch.all(a >= edges[:, :1]) and torch.all(a <= edges[:, -1:])


def test_importance_samples_are_detached():
    weights = torch.ones(2, 3, requires_grad=True)
    edges = torch.tensor([[0.0, 1.0, 2.0, 3.0]] * 2, requires_grad=True)
    t = importance_samples(edges, weights, 5, perturb=False)
    assert not t.requires_grad


def test_intervals_from_samples_hand_example():
    t = torch.tensor([[1.0, 2.0, 4.0], [0.5, 0.5, 1.0]])
    near, far = torch.tensor([0.0, 0.0]), torch.tensor([5.0, 2.0])
    t_starts, t_ends = intervals_from_samples(t, near, far)
    assert torch.allclose(t_starts, torch.tensor([[0.0, 1.5, 3.0], [0.0, 0.5, 0.75]]))
    assert torch.allclose(t_ends, torch.tensor([[1.5, 3.0, 5.0], [0.5, 0.75, 2.0]]))
    one_start, one_end = intervals_from_samples(torch.tensor([[3.0]]), torch.tensor([2.0]), torch.tensor([6.0]))
    assert one_start.tolist() == [[2.0]] and one_end.tolist() == [[6.0]]


# ---------------------------------------------------------------- padded rendering


def test_opaque_first_sample_takes_all_the_weight():
    t_starts, t_ends = _unit_intervals(1, 3)
    sigmas = torch.tensor([[1e10, 1.0, 2.0]])
    weights, transmittance, alphas = render_weight_from_density(t_starts, t_ends, sigmas)
    assert weights.tolist() == [[1.0, 0.0, 0.0]]
    assert transmittance.tolist() == [[1.0, 0.0, 0.0]]
    assert torch.allclose(alphas, torch.tensor([[1.0, 1 - math.exp(-1.0), 1 - math.exp(-2.0)]]))


def test_two_half_opaque_samples_weigh_a_half_and_a_quarter():
    t_starts, t_ends = _unit_intervals(1, 2, torch.float64)
    sigmas = torch.full((1, 2), LN2, dtype=torch.float64)
    weights, transmittance, alphas = render_weight_from_density(t_starts, t_ends, sigmas)
    assert torch.allclose(alphas, torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    assert torch.allclose(transmittance, torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    assert torch.allclose(weights, torch.tensor([[0.5, 0.25]], dtype=torch.float64))
    weights_a, transmittance_a = render_weight_from_alpha(torch.tensor([[0.5, 0.5]]))
    assert weights_a.tolist() == [[0.5, 0.25]] and transmittance_a.tolist() == [[1.0, 0.5]]


def test_interval_lengths_matter():
    # sigma ln 2 over an interval of length 2 has alpha 3/4; the next sample sees T = 1/4
    t_starts, t_ends = torch.tensor([[0.0, 2.0]]), torch.tensor([[2.0, 3.0]])
    weights, transmittance, alphas = render_weight_from_density(t_starts, t_ends, torch.full((1, 2), LN2))
    assert torch.allclose(alphas, torch.tensor([[0.75, 0.5]]))
    assert torch.allclose(transmittance, torch.tensor([[1.0, 0.25]]))
    assert torch.allclose(weights, torch.tensor([[0.75, 0.125]]))


def test_small_sample_before_an_opaque_one_keeps_its_transmittance():
    t_starts, t_ends = _unit_intervals(1, 3)
    transmittance = render_transmittance_from_density(t_starts, t_ends, torch.tensor([[0.1, 1e10, 0.2]]))
    assert torch.allclose(transmittance, torch.tensor([[1.0, math.exp(-0.1), 0.0]]))


def test_alpha_weights_of_an_opaque_sample():
    weights, transmittance = render_weight_from_alpha(torch.tensor([[0.25, 1.0, 0.5]]))
    assert weights.tolist() == [[0.25, 0.75, 0.0]]
    assert transmittance.tolist() == [[1.0, 0.75, 0.0]]


def test_empty_ray_has_no_opacity_and_shows_exactly_the_background():
    t_starts, t_ends = _unit_intervals(2, 4)
    sigmas = torch.zeros(2, 4)
    colours = torch.rand(2, 4, 3)
    weights, transmittance, _ = render_weight_from_density(t_starts, t_ends, sigmas)
    assert torch.all(transmittance == 1.0) and torch.all(weights == 0.0)
    opacity = accumulate_along_rays(weights, None)
    colour = accumulate_along_rays(weights, colours)
    assert opacity.tolist() == [[0.0], [0.0]]
    background = (0.25, 0.5, 1.0)
    assert composite_on_background(colour, opacity, background).tolist() == [list(background)] * 2
    assert torch.equal(
        composite_on_background(colour, opacity, torch.tensor(background)), torch.tensor([background] * 2)
    )


def test_accumulate_and_composite_hand_example():
    weights = torch.tensor([[0.5, 0.25]])
    colours = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    colour = accumulate_along_rays(weights, colours)
    opacity = accumulate_along_rays(weights)
    assert colour.tolist() == [[0.5, 0.25, 0.0]]
    assert opacity.tolist() == [[0.75]]
    # depth as a one-channel value
    depth = accumulate_along_rays(weights, torch.tensor([[[2.0], [4.0]]]))
    assert depth.tolist() == [[2.0]]
    assert composite_on_background(colour, opacity, (1.0, 1.0, 1.0)).tolist() == [[0.75, 0.5, 0.25]]


def test_padded_shapes_are_checked():
    with pytest.raises(ValueError, match="shapes must match"):
        render_weight_from_density(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[R, S, C\]"):
        accumulate_along_rays(torch.zeros(2, 3), torch.zeros(2, 4, 3))


def test_weights_are_differentiable_wrt_sigmas_gradcheck():
    gen = torch.Generator().manual_seed(0)
    t_starts = torch.sort(torch.rand(3, 4, generator=gen, dtype=torch.float64), dim=-1).values
    t_ends = t_starts + 0.1 + torch.rand(3, 4, generator=gen, dtype=torch.float64)
    sigmas = (torch.rand(3, 4, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    values = torch.rand(3, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: render_weight_from_density(t_starts, t_ends, s)[0], (sigmas,))
    assert torch.autograd.gradcheck(
        lambda s, v: accumulate_along_rays(render_weight_from_density(t_starts, t_ends, s)[0], v), (sigmas, values)
    )
    alphas = torch.rand(3, 4, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: render_weight_from_alpha(a)[0], (alphas,))


def test_weight_gradient_by_hand():
    # two unit intervals: w0 = 1 - e^-s0, w1 = e^-s0 (1 - e^-s1); d(w0 + w1)/ds0 = e^-s0 e^-s1, d/ds1 = e^-s0 e^-s1
    t_starts, t_ends = _unit_intervals(1, 2, torch.float64)
    sigmas = torch.tensor([[LN2, LN2]], dtype=torch.float64, requires_grad=True)
    render_weight_from_density(t_starts, t_ends, sigmas)[0].sum().backward()
    assert torch.allclose(sigmas.grad, torch.tensor([[0.25, 0.25]], dtype=torch.float64))


# ---------------------------------------------------------------- packed rendering


def _packed_and_padded(counts: list[int], n_channels: int = 3, seed: int = 0, scale: float = 2.0):
    """Random sorted samples of rays with `counts` samples each, packed [P] and padded [R, S_max].

    Padding intervals have zero length and zero density, so they change no weight.
    """
    gen = torch.Generator().manual_seed(seed)
    n_rays, width = len(counts), max(max(counts), 1)
    lengths = torch.rand(n_rays, width, generator=gen) * 0.5 + 0.01
    valid = torch.arange(width)[None, :] < torch.tensor(counts)[:, None]  # [R, S]
    lengths = torch.where(valid, lengths, torch.zeros(()))
    t_ends = 2.0 + torch.cumsum(lengths, dim=-1)
    t_starts = t_ends - lengths
    sigmas = torch.where(valid, torch.rand(n_rays, width, generator=gen) * scale, torch.zeros(()))
    values = torch.rand(n_rays, width, n_channels, generator=gen)
    ray_indices = torch.arange(n_rays)[:, None].expand(n_rays, width)[valid]
    packed = (t_starts[valid], t_ends[valid], sigmas[valid], values[valid], ray_indices)
    padded = (t_starts, t_ends, sigmas, values, valid)
    return packed, padded


def test_packed_equals_padded_with_uneven_and_empty_rays():
    counts = [3, 0, 5, 1, 0]  # the last ray is empty too (n_rays beyond the largest index)
    (ps, pe, psig, pval, ray_indices), (s, e, sig, val, valid) = _packed_and_padded(counts)
    weights, transmittance, alphas = render_weight_from_density(s, e, sig)
    weights_p, transmittance_p, alphas_p = render_weight_from_density_packed(ps, pe, psig, ray_indices, len(counts))
    assert weights_p.shape == (sum(counts),)
    assert torch.allclose(weights_p, weights[valid], atol=1e-6)
    assert torch.allclose(transmittance_p, transmittance[valid], atol=1e-6)
    assert torch.allclose(alphas_p, alphas[valid], atol=1e-6)
    assert torch.equal(weights[~valid], torch.zeros_like(weights[~valid]))
    colour = accumulate_along_rays(weights, val)
    colour_p = accumulate_along_rays_packed(weights_p, pval, ray_indices, len(counts))
    assert colour_p.shape == (5, 3)
    assert torch.allclose(colour_p, colour, atol=1e-6)
    opacity = accumulate_along_rays(weights, None)
    opacity_p = accumulate_along_rays_packed(weights_p, None, ray_indices, len(counts))
    assert torch.allclose(opacity_p, opacity, atol=1e-6)
    assert opacity_p[1].item() == 0.0 and opacity_p[4].item() == 0.0
    # each ray's first sample sees full transmittance
    assert transmittance_p[torch.tensor([0, 3, 8])].tolist() == [1.0, 1.0, 1.0]


def test_packed_hand_example():
    # ray 0: two samples with alpha 1/2; ray 1: none; ray 2: one opaque sample
    t_starts = torch.tensor([0.0, 1.0, 0.0])
    t_ends = torch.tensor([1.0, 2.0, 1.0])
    sigmas = torch.tensor([LN2, LN2, 1e10])
    ray_indices = torch.tensor([0, 0, 2])
    weights, transmittance, alphas = render_weight_from_density_packed(t_starts, t_ends, sigmas, ray_indices, 3)
    assert torch.allclose(weights, torch.tensor([0.5, 0.25, 1.0]))
    assert torch.allclose(transmittance, torch.tensor([1.0, 0.5, 1.0]))
    values = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    colour = accumulate_along_rays_packed(weights, values, ray_indices, 3)
    opacity = accumulate_along_rays_packed(weights, None, ray_indices, 3)
    assert torch.allclose(colour, torch.tensor([[0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert torch.allclose(opacity, torch.tensor([[0.75], [0.0], [1.0]]))
    pixels = composite_on_background(colour, opacity, (1.0, 1.0, 1.0))
    assert torch.allclose(pixels, torch.tensor([[0.75, 0.5, 0.25], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]))


def test_packed_with_no_samples_at_all():
    empty = torch.zeros(0)
    ray_indices = torch.zeros(0, dtype=torch.long)
    weights, transmittance, alphas = render_weight_from_density_packed(empty, empty, empty, ray_indices, 4)
    assert weights.shape == transmittance.shape == alphas.shape == (0,)
    colour = accumulate_along_rays_packed(weights, torch.zeros(0, 3), ray_indices, 4)
    assert colour.tolist() == [[0.0, 0.0, 0.0]] * 4


def test_packed_opaque_and_infinite_densities_do_not_leak_into_later_rays():
    # ray 0 holds an infinite density, ray 1 a huge one; ray 2 must be unaffected
    t_starts = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])
    t_ends = torch.tensor([1.0, 2.0, 1.0, 1.0, 2.0])
    sigmas = torch.tensor([math.inf, 1.0, 1e30, LN2, LN2])
    ray_indices = torch.tensor([0, 0, 1, 2, 2])
    weights, transmittance, _ = render_weight_from_density_packed(t_starts, t_ends, sigmas, ray_indices, 3)
    assert weights.tolist() == [1.0, 0.0, 1.0, 0.5, 0.25]
    assert transmittance.tolist() == [1.0, 0.0, 1.0, 1.0, 0.5]


def test_packed_stays_accurate_over_a_long_array():
    # 20000 rays x 64 samples of dense material: the global cumulative optical thickness is ~1e6,
    # yet each ray's transmittance matches the padded computation
    counts = [64] * 20000
    (ps, pe, psig, pval, ray_indices), (s, e, sig, val, valid) = _packed_and_padded(counts, seed=2, scale=20.0)
    transmittance = render_transmittance_from_density(s.double(), e.double(), sig.double())
    transmittance_p = render_transmittance_from_density_packed(ps, pe, psig, ray_indices, len(counts))
    assert transmittance_p.dtype == torch.float32
    assert torch.allclose(transmittance_p.double(), transmittance[valid], atol=1e-6, rtol=1e-5)
    colour = accumulate_along_rays(render_weight_from_density(s, e, sig)[0], val)
    weights_p = render_weight_from_density_packed(ps, pe, psig, ray_indices, len(counts))[0]
    assert torch.allclose(accumulate_along_rays_packed(weights_p, pval, ray_indices, len(counts)), colour, atol=1e-5)


def test_packed_gradients_match_padded_and_pass_gradcheck():
    counts = [2, 0, 3]
    (ps, pe, psig, pval, ray_indices), (s, e, sig, val, valid) = _packed_and_padded(counts, seed=5)
    ps, pe = ps.double(), pe.double()
    psig = psig.double().requires_grad_()
    pval = pval.double().requires_grad_()

    def render(sigmas, values):
        weights = render_weight_from_density_packed(ps, pe, sigmas, ray_indices, 3)[0]
        return accumulate_along_rays_packed(weights, values, ray_indices, 3)

    assert torch.autograd.gradcheck(render, (psig, pval))
    render(psig, pval).sum().backward()
    sig = sig.double().requires_grad_()
    val = val.double().requires_grad_()
    accumulate_along_rays(render_weight_from_density(s.double(), e.double(), sig)[0], val).sum().backward()
    assert torch.allclose(psig.grad, sig.grad[valid])
    assert torch.allclose(pval.grad, val.grad[valid])


def test_packed_shapes_are_checked():
    with pytest.raises(ValueError, match="shapes must match"):
        render_weight_from_density_packed(
            torch.zeros(3), torch.ones(3), torch.zeros(3), torch.zeros(2, dtype=torch.long), 1
        )
    with pytest.raises(ValueError, match="integer"):
        render_weight_from_density_packed(torch.zeros(3), torch.ones(3), torch.zeros(3), torch.zeros(3), 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_works_on_cuda():
    counts = [3, 0, 5]
    (ps, pe, psig, pval, ray_indices), (s, e, sig, val, valid) = _packed_and_padded(counts)
    cuda = torch.device("cuda")
    weights = render_weight_from_density_packed(ps.to(cuda), pe.to(cuda), psig.to(cuda), ray_indices.to(cuda), 3)[0]
    colour = accumulate_along_rays_packed(weights, pval.to(cuda), ray_indices.to(cuda), 3)
    reference = accumulate_along_rays(render_weight_from_density(s, e, sig)[0], val)
    assert colour.device.type == "cuda"
    assert torch.allclose(colour.cpu(), reference, atol=1e-6)
    t = importance_samples(
        torch.tensor([[0.0, 1.0, 2.0]], device=cuda), torch.tensor([[0.0, 1.0]], device=cuda), 8, True,
        torch.Generator(device=cuda).manual_seed(0),
    )
    assert t.device.type == "cuda" and torch.all(t >= 1.0)
