"""Tests of inrcore/skeleton/tvfield.py: the TV term, its decay, the learning targets and a short fit."""

import math

import numpy as np
import pytest
import torch

from inrcore.fields.gradients import field_of_network, gradient_of_field
from inrcore.fields.networks import init_siren_params, siren_spec
from inrcore.settings import config_replace
from inrcore.skeleton.settings import SkeletonFieldConfig
from inrcore.skeleton.tvfield import (
    fit_skeleton_field,
    learning_targets,
    skeleton_field_loss,
    tv_decay,
    tv_residual,
)


def test_tv_residual_of_a_quadratic_by_hand():
    # u = x^T A x / 2 with A = diag(1, 2, 3): grad u = A x, grad |grad u| = A^2 x / |A x|.
    # At x = (1, 1, 1): A^2 x = (1, 4, 9), |A x| = sqrt(14), so |grad |grad u|| = sqrt(98 / 14) = sqrt(7).
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    u = 0.5 * (a * x * x).sum(dim=-1)
    gradients = gradient_of_field(u, x)
    tv = tv_residual(gradients, x)
    # Second point: A x = (0, 0, 6), A^2 x = (0, 0, 18): |grad |grad u|| = 18 / 6 = 3.
    assert tv.detach().numpy() == pytest.approx([math.sqrt(7.0), 3.0], rel=1e-12)


def test_tv_residual_matches_finite_differences_of_the_gradient_norm_of_a_siren():
    spec = siren_spec(16, 2, 30.0, 30.0)
    params = {k: v.double() for k, v in init_siren_params(spec, torch.Generator().manual_seed(3)).items()}
    field = field_of_network(spec, params)
    x = torch.tensor([[0.1, -0.2, 0.3], [0.5, 0.05, -0.4]], dtype=torch.float64, requires_grad=True)
    tv = tv_residual(gradient_of_field(field(x), x), x).detach().numpy()

    def norm_at(p):
        p = p.clone().requires_grad_(True)
        return gradient_of_field(field(p), p, create_graph=False).norm(dim=-1).detach().numpy()

    h = 1e-6
    slope = np.stack([(norm_at(x.detach() + h * e) - norm_at(x.detach() - h * e)) / (2 * h)
                      for e in torch.eye(3, dtype=torch.float64)], axis=-1)
    assert tv == pytest.approx(np.linalg.norm(slope, axis=-1), rel=1e-5)


def test_the_tv_term_trains_its_weights_as_finite_differences_say():
    # d(TV term)/d(one weight) by autograd through the double back-propagation, against central differences.
    spec = siren_spec(8, 2, 30.0, 30.0)
    params = {k: v.double() for k, v in init_siren_params(spec, torch.Generator().manual_seed(5)).items()}
    x = torch.rand((64, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    name = "2_weight"

    def tv_term(p):
        points = x.clone().requires_grad_(True)
        return tv_residual(gradient_of_field(field_of_network(spec, p)(points), points), points).mean()

    weights = {k: v.clone().requires_grad_(k == name) for k, v in params.items()}
    (grad,) = torch.autograd.grad(tv_term(weights), weights[name])
    h = 1e-6
    for index in [(0, 0), (3, 5), (7, 2)]:
        up = {k: v.clone() for k, v in params.items()}
        down = {k: v.clone() for k, v in params.items()}
        up[name][index] += h
        down[name][index] -= h
        numeric = (float(tv_term(up).detach()) - float(tv_term(down).detach())) / (2 * h)
        assert float(grad[index]) == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_tv_decay_follows_the_authors_schedule():
    assert tv_decay(0.0, 50.0) == 1.0
    assert tv_decay(0.2, 50.0) == pytest.approx(0.5)  # epoch 10 of 50
    assert tv_decay(1.0, 50.0) == pytest.approx(1.0 / 26.0)
    assert tv_decay(0.7, 0.0) == 1.0  # no decay


def test_learning_targets_by_hand():
    points = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    queries = np.array([[0.0, 0.0, 1.5], [0.0, 0.3, 0.6], [0.0, 0.0, -1.0]])
    d, grad = learning_targets(queries, points, normals)
    # Outside above the top point: +0.5, gradient +z. Below it (inside): -0.5, gradient (0, -0.6, 0.8).
    assert d == pytest.approx([0.5, -0.5, 0.0], abs=1e-6)
    assert grad[0] == pytest.approx([0, 0, 1])
    assert grad[1] == pytest.approx([0.0, -0.6, 0.8], abs=1e-6)
    assert grad[2] == pytest.approx([0, 0, -1])  # on the point itself: its normal


def test_loss_terms_are_the_weighted_means():
    config = SkeletonFieldConfig()
    x = torch.zeros((3, 3), requires_grad=True)
    values = torch.tensor([[0.0], [0.1], [-0.2]])
    gradients = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    normals = torch.tensor([[0.0, 0.0, 1.0]])
    learning = (torch.tensor([0.0]), torch.tensor([[0.0, 1.0, 0.0]]))
    _, terms = skeleton_field_loss(values, gradients, x, 1, 1, normals, config, tv_weight=0.0, learning=learning)
    assert float(terms["eikonal"]) == pytest.approx(200.0 * 1.0)  # (|(2,0,0)| - 1)^2 = 1
    assert float(terms["surface"]) == pytest.approx(100.0 * 100.0 * 0.01)
    assert float(terms["normal"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["learning"]) == pytest.approx(100.0 * 10.0 * 0.04, rel=1e-5)
    assert "tv" not in terms


def test_a_short_fit_makes_a_sphere_field_negative_inside_and_logs_the_tv_weight():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(4000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    points = 0.6 * normals
    config = config_replace(SkeletonFieldConfig(), {"steps": 150, "batch_box": 512, "batch_surface": 512,
                                                    "n_learning": 2000, "log_every": 50})
    entries = []
    fit = fit_skeleton_field(points, normals, config, "cpu", on_log=entries.append)
    assert fit.steps == 150 and [e["step"] for e in entries] == [50, 100, 150]
    assert entries[0]["tv_weight"] == pytest.approx(20.0 * tv_decay(49 / 150, 50.0))
    assert "learning" in entries[0] and "learning" not in entries[-1]  # learning points for the first 40%
    field = field_of_network(fit.spec, fit.params)
    with torch.no_grad():
        centre, far = field(torch.zeros((1, 3))), field(torch.tensor([[0.95, 0.0, 0.0]]))
    assert float(centre) < -0.2 and float(far) > 0.1
