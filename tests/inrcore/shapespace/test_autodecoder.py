"""The auto-decoder: its losses by hand, training over analytic shapes, code fitting to a held-out one."""

import math

import numpy as np
import pytest
import torch

from inrcore.fields.networks import evaluate_network
from inrcore.shapespace.autodecoder import (
    SignedSamples,
    TargetSamples,
    clamped_l1,
    code_norm_penalty,
    code_square_penalty,
    fit_codes,
    interpolated_codes,
    train_auto_decoder,
)
from inrcore.shapespace.decoder import member_network
from inrcore.settings import config_replace
from inrcore.shapespace.settings import AutoDecoderConfig, CodeFitConfig, DecoderConfig


def test_clamped_l1_by_hand():
    prediction = torch.tensor([0.05, 0.3, -0.2, 0.0])
    target = torch.tensor([0.0, 0.5, 0.1, -0.04])
    # |0.05 - 0| + |0.1 - 0.1| + |-0.1 - 0.1| + |0 + 0.04| = 0.05 + 0 + 0.2 + 0.04, over 4
    assert clamped_l1(prediction, target, 0.1).item() == pytest.approx(0.29 / 4)


def test_code_penalties_by_hand():
    codes = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # norms 5 and 0
    assert code_norm_penalty(codes, 1e-4, 50, 100).item() == pytest.approx(1e-4 * 0.5 * 2.5)
    assert code_norm_penalty(codes, 1e-4, 300, 100).item() == pytest.approx(1e-4 * 2.5)
    assert code_square_penalty(codes, 1e-4).item() == pytest.approx(1e-4 * 25 / 4)


def test_batches_are_half_inside_half_outside():
    points = np.zeros((10, 3), np.float32)
    sdf = np.array([1, 2, 3, 4, 5, 6, 7, 8, -1, -2], np.float32)
    samples = SignedSamples.of([(points, sdf)], torch.device("cpu"))
    rows = samples.draw(torch.tensor([0, 0]), 100, torch.Generator().manual_seed(0))
    assert rows.shape == (2, 100, 4)
    assert bool((rows[:, :50, 3] > 0).all()) and bool((rows[:, 50:, 3] < 0).all())
    assert set(rows[:, 50:, 3].flatten().tolist()) == {-1.0, -2.0}


def sphere(p, r):
    return np.linalg.norm(p, axis=1) - r


def box(p, half=0.45):
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def torus(p, major=0.5, minor=0.2):
    ring = np.linalg.norm(p[:, :2], axis=1) - major
    return np.hypot(ring, p[:, 2]) - minor


def samples_of(sdf, rng, n=6000):
    direction = rng.normal(size=(n, 3))
    near = direction / np.linalg.norm(direction, axis=1, keepdims=True) * rng.uniform(0.1, 0.8, (n, 1))
    points = np.concatenate([near, rng.uniform(-1, 1, (n // 2, 3))]).astype(np.float32)
    return points, sdf(points).astype(np.float32)


def radius_along_rays(spec, params, n=64):
    """Mean distance from the origin of the member's zero set along n rays (bisection)."""
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    lo, hi = torch.zeros(n, 1), torch.ones(n, 1)
    for _ in range(30):
        mid = (lo + hi) / 2
        inside = evaluate_network(spec, params, d * mid)[:, :1] < 0
        lo, hi = torch.where(inside, mid, lo), torch.where(inside, hi, mid)
    return ((lo + hi) / 2).squeeze(1)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    shapes = [samples_of(lambda p: sphere(p, 0.3), rng), samples_of(lambda p: sphere(p, 0.7), rng),
              samples_of(box, rng), samples_of(torus, rng)]
    config = AutoDecoderConfig(decoder=DecoderConfig(latent=8, width=64, layers=6, skip_at=3), epochs=600,
                               shapes_per_batch=4, samples_per_shape=1024, lr_every=400, log_every=100,
                               lr_decoder=1e-3, lr_codes=1e-2)
    torch.manual_seed(0)
    return shapes, train_auto_decoder(shapes, config, torch.device("cpu"))


def test_training_fits_the_shapes(trained):
    shapes, result = trained
    assert result.epochs == 600 and result.steps == 600
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert result.codes.shape == (4, 8)
    assert bool((result.codes.norm(dim=1) <= 1.0 + 1e-6).all())
    for (points, sdf), code in zip(shapes, result.codes):
        spec, params = member_network(result.spec, result.params, code)
        near = np.abs(sdf) < 0.05
        values = evaluate_network(spec, params, torch.from_numpy(points[near]))[:, 0].numpy()
        assert np.abs(values - sdf[near]).mean() < 0.04  # well within the clamp band (0.1)
    radii = radius_along_rays(*member_network(result.spec, result.params, result.codes[1]))
    assert radii.mean().item() == pytest.approx(0.7, abs=0.03)


@pytest.mark.parametrize("init", ["nearest", "random"])
def test_a_held_out_spheres_radius_is_recovered(trained, init):
    _, result = trained
    rng = np.random.default_rng(5)
    points, sdf = samples_of(lambda p: sphere(p, 0.5), rng)
    fit = fit_codes(result.spec, result.params, [TargetSamples(points, sdf)],
                    CodeFitConfig(steps=300, samples=2000, init=init), torch.device("cpu"), candidates=result.codes)
    radii = radius_along_rays(*member_network(result.spec, result.params, fit.codes[0]))
    assert radii.mean().item() == pytest.approx(0.5, abs=0.05)
    assert fit.steps == 300 and math.isfinite(fit.losses[0])
    # nearest: at the box (half side 0.45, its faces 0.05 inside the sphere), not at the spheres of radius 0.3
    # and 0.7, whose surfaces lie 0.2 away, past the clamp (0.1) everywhere; the fit still ends at 0.5
    assert fit.starts == (None if init == "random" else [2])


def test_codes_start_at_the_training_code_of_their_own_shape(trained):
    shapes, result = trained
    rng = np.random.default_rng(7)
    targets = [TargetSamples(*samples_of(torus, rng)), TargetSamples(*samples_of(box, rng)),
               TargetSamples(*samples_of(lambda p: sphere(p, 0.68), rng))]
    fit = fit_codes(result.spec, result.params, targets, CodeFitConfig(steps=1, samples=2000), torch.device("cpu"),
                    candidates=result.codes)
    assert fit.starts == [3, 2, 1]  # torus, box, the larger sphere (0.7) of the training shapes
    # one Adam step of lr 5e-3 moves each coordinate by at most about 5e-3 from where it started
    assert torch.allclose(fit.codes, result.codes[[3, 2, 1]], atol=6e-3)


def test_nearest_start_needs_candidates(trained):
    _, result = trained
    target = TargetSamples(*samples_of(box, np.random.default_rng(8)))
    with pytest.raises(ValueError, match="needs the space's codes"):
        fit_codes(result.spec, result.params, [target], CodeFitConfig(steps=1), torch.device("cpu"))


def test_outside_only_samples_push_the_field_up(trained):
    _, result = trained
    rng = np.random.default_rng(6)
    points, sdf = samples_of(lambda p: sphere(p, 0.3), rng)
    outside = rng.uniform(-0.25, 0.25, (500, 3)).astype(np.float32)  # claims: the small ball is empty
    target = TargetSamples(np.concatenate([points, outside]), np.concatenate([sdf, np.ones(500, np.float32)]),
                           np.concatenate([np.ones(len(points), bool), np.zeros(500, bool)]))
    config = CodeFitConfig(steps=150, samples=2000, init="random")
    plain = fit_codes(result.spec, result.params, [TargetSamples(points, sdf)], config, torch.device("cpu"))
    hinged = fit_codes(result.spec, result.params, [target], config_replace(config, {"free_space": 10.0}),
                       torch.device("cpu"))
    origin = torch.zeros(1, 3)
    value = lambda code: evaluate_network(*member_network(result.spec, result.params, code), origin).item()  # noqa: E731
    assert value(hinged.codes[0]) > value(plain.codes[0])


def test_interpolated_codes_end_at_both_codes():
    a, b = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 3.0])
    codes = interpolated_codes(a, b, 3)
    assert codes.tolist() == [[0.0, 1.0], [0.5, 2.0], [1.0, 3.0]]
