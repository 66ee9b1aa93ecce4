import math

import torch

from inrcore.fields.gradients import gradient_of_field
from inrcore.sdf.losses import (
    clamped_sdf_residual,
    eikonal_residual,
    masked_mean,
    normal_residual,
    offsurface_residual,
    siren_sdf_loss,
    surface_residual,
)
from inrcore.sdf.settings import LossConfig


RADIUS = 0.5


def sphere_sdf(points):
    return points.norm(dim=-1, keepdim=True) - RADIUS


def sphere_points(n, radius, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    return d / d.norm(dim=-1, keepdim=True) * radius


def test_gradient_of_analytic_sphere_is_the_unit_radial_direction():
    p = torch.tensor([[0.3, 0.4, 0.0], [0.0, 0.0, -2.0]], requires_grad=True)
    grad = gradient_of_field(sphere_sdf(p), p)
    assert torch.allclose(grad, torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.0, -1.0]]), atol=1e-6)


def test_analytic_sdf_has_zero_surface_normal_and_eikonal_residuals():
    surface = sphere_points(200, RADIUS).requires_grad_(True)
    values = sphere_sdf(surface)
    grad = gradient_of_field(values, surface)
    normals = surface.detach() / RADIUS
    assert surface_residual(values).max() < 1e-6
    assert normal_residual(grad, normals).abs().max() < 1e-6
    volume = (torch.rand(500, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1).requires_grad_(True)
    assert eikonal_residual(gradient_of_field(sphere_sdf(volume), volume)).max() < 1e-10


def test_residuals_by_hand():
    assert torch.allclose(eikonal_residual(torch.tensor([[0.0, 3.0, 4.0]])), torch.tensor([16.0]))
    assert torch.allclose(normal_residual(torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])),
                          torch.tensor([1.0]))
    assert torch.allclose(normal_residual(torch.tensor([[-2.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])),
                          torch.tensor([2.0]))
    assert torch.allclose(offsurface_residual(torch.tensor([[0.01], [-0.02]]), 100.0),
                          torch.tensor([math.exp(-1.0), math.exp(-2.0)]))
    assert torch.allclose(surface_residual(torch.tensor([[-0.25], [0.5]])), torch.tensor([0.25, 0.5]))


def test_siren_loss_weights_each_term():
    weights = LossConfig(surface=2.0, normal=3.0, eikonal=5.0, offsurface=7.0, alpha=10.0)
    loss, terms = siren_sdf_loss(
        surface_values=torch.tensor([[0.1], [-0.3]]),                    # mean |u| = 0.2
        surface_gradients=torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        surface_normals=torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),  # residuals 0 and 1 -> 0.5
        volume_gradients=torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0]]),  # residuals 1 and 0 -> 0.5
        free_values=torch.tensor([[0.0]]),                                   # exp(0) = 1
        weights=LossConfig(surface=2.0, normal=3.0, eikonal=5.0, offsurface=7.0, alpha=10.0, sdf=0.0),
    )
    expected = {"surface": 0.4, "normal": 1.5, "eikonal": 2.5, "offsurface": 7.0}
    assert terms == pytest_approx(expected)
    assert abs(float(loss) - sum(expected.values())) < 1e-5


def test_masked_mean_by_hand_and_the_masked_offsurface_term_equals_the_picked_one():
    residuals = torch.tensor([1.0, 2.0, 4.0, 8.0])
    assert float(masked_mean(residuals, torch.tensor([True, False, True, False]))) == 2.5  # (1 + 4) / 2
    assert float(masked_mean(residuals, torch.zeros(4, dtype=torch.bool))) == 0.0  # none free: 0, not nan
    assert float(masked_mean(residuals)) == 3.75
    values = torch.tensor([[0.0], [0.3], [0.1], [-0.2]])
    free = torch.tensor([False, True, False, True])
    common = dict(surface_values=values[:1], surface_gradients=torch.tensor([[1.0, 0.0, 0.0]]),
                  surface_normals=torch.tensor([[1.0, 0.0, 0.0]]), volume_gradients=torch.ones(4, 3),
                  weights=LossConfig(alpha=10.0, offsurface=1.0, sdf=0.0))
    _, masked = siren_sdf_loss(free_values=values, free_mask=free, **common)
    _, picked = siren_sdf_loss(free_values=values[free], **common)
    expected = (math.exp(-3.0) + math.exp(-2.0)) / 2  # exp(-10 |u|) at u = 0.3 and -0.2
    assert float(masked["offsurface"]) == pytest_approx(expected) == float(picked["offsurface"])
    _, none_free = siren_sdf_loss(free_values=values, free_mask=torch.zeros(4, dtype=torch.bool), **common)
    assert float(none_free["offsurface"]) == 0.0


def pytest_approx(d):
    import pytest

    return pytest.approx(d, rel=1e-5)


def test_clamped_sdf_residual_by_hand():
    values = torch.tensor([[0.05], [0.3], [-0.2]])
    target = torch.tensor([0.0, 0.05, -1.0])
    # clamp 0.1: |0.05-0| = 0.05, |0.1-0.05| = 0.05, |-0.1-(-0.1)| = 0
    assert torch.allclose(clamped_sdf_residual(values, target, 0.1), torch.tensor([0.05, 0.05, 0.0]))


def test_sdf_term_joins_the_loss_when_weighted():
    one = torch.ones(1, 1)
    grad = torch.tensor([[1.0, 0.0, 0.0]])
    loss, terms = siren_sdf_loss(0 * one, grad, grad, grad, torch.zeros(0, 1),
                                 LossConfig(sdf=10.0, sdf_clamp=0.5, offsurface=0.0),
                                 known_values=torch.tensor([[0.2], [0.9]]), known_sdf=torch.tensor([0.0, 0.1]))
    assert terms["sdf"] == pytest_approx(10.0 * (0.2 + 0.4) / 2)
    assert float(loss) == pytest_approx(3.0)


def test_igr_loss_is_zero_for_the_analytic_sphere_and_weights_terms_by_hand():
    from inrcore.sdf.losses import igr_sdf_loss

    surface = sphere_points(300, RADIUS).requires_grad_(True)
    values = sphere_sdf(surface)
    grad = gradient_of_field(values, surface)
    volume = (torch.rand(300, 3, generator=torch.Generator().manual_seed(5)) * 2 - 1).requires_grad_(True)
    loss, _ = igr_sdf_loss(values, grad, surface.detach() / RADIUS, gradient_of_field(sphere_sdf(volume), volume))
    assert float(loss.detach()) < 1e-5

    loss, terms = igr_sdf_loss(
        surface_values=torch.tensor([[0.2], [-0.4]]),                         # mean |u| = 0.3
        surface_gradients=torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]),
        surface_normals=torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),     # |grad - n| = 0, 1 -> 0.5
        volume_gradients=torch.tensor([[0.0, 0.0, 3.0]]),                     # (3 - 1)^2 = 4
        tau=2.0, lam=0.5,
    )
    assert terms == pytest_approx({"surface": 0.3, "normal": 1.0, "eikonal": 2.0})
    assert float(loss) == pytest_approx(3.3)


def test_surface_weights_scale_each_surface_sample_in_both_losses():
    from inrcore.sdf.losses import igr_sdf_loss, weighted_mean

    assert float(weighted_mean(torch.tensor([2.0, 4.0]), torch.tensor([1.0, 0.0]))) == 1.0
    assert float(weighted_mean(torch.tensor([2.0, 4.0]))) == 3.0
    values = torch.tensor([[0.1], [-0.3]])
    gradients = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    normals = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # cosine residuals 0 and 1
    weights = torch.tensor([1.0, 0.5])
    _, terms = siren_sdf_loss(values, gradients, normals, gradients, torch.zeros(0, 1),
                              LossConfig(surface=2.0, normal=3.0, eikonal=0.0, offsurface=0.0, sdf=0.0),
                              surface_weights=weights)
    # surface: 2 * (1 * 0.1 + 0.5 * 0.3) / 2 = 0.25; normal: 3 * (1 * 0 + 0.5 * 1) / 2 = 0.75
    assert terms["surface"] == pytest_approx(0.25) and terms["normal"] == pytest_approx(0.75)
    _, terms = igr_sdf_loss(values, gradients, normals, gradients, tau=1.0, lam=0.0, surface_weights=weights)
    # surface: (0.1 + 0.15) / 2; normal: |grad - n| = 0 and sqrt(2), times 1 and 0.5, over 2
    assert terms["surface"] == pytest_approx(0.125) and terms["normal"] == pytest_approx(math.sqrt(2) / 4)
