"""PSNR from hand-worked errors; SSIM against identity, a hand-worked case and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from inrcore.geometry.imagemetrics import gaussian_window, psnr, ssim


def test_psnr_of_a_constant_error_of_a_tenth_is_20_db():
    reference = np.full((8, 6, 3), 0.5, dtype=np.float32)
    # MSE = 0.01 -> -10 log10(0.01) = 20.
    assert psnr(reference + 0.1, reference) == pytest.approx(20.0, abs=1e-4)
    assert psnr(reference - 0.1, reference) == pytest.approx(20.0, abs=1e-4)
    # MSE = 1e-4 -> 40 dB.
    assert psnr(reference + 0.01, reference) == pytest.approx(40.0, abs=1e-3)


def test_psnr_of_one_wrong_pixel():
    reference = np.zeros((10, 10, 3))
    image = reference.copy()
    image[3, 4] = 1.0  # 3 of 300 values off by 1: MSE = 0.01 -> 20 dB
    assert psnr(image, reference) == pytest.approx(20.0)
    assert psnr(reference, reference) == math.inf


def test_psnr_on_tensors_is_per_image_and_differentiable():
    reference = torch.zeros(2, 4, 4, 3)
    image = torch.stack([torch.full((4, 4, 3), 0.1), torch.full((4, 4, 3), 0.01)]).requires_grad_(True)
    value = psnr(image, reference)
    assert value.shape == (2,)
    assert torch.allclose(value, torch.tensor([20.0, 40.0]), atol=1e-3)
    value.sum().backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()
    batch = psnr(image.detach().numpy(), reference.numpy())
    assert batch.shape == (2,) and np.allclose(batch, [20.0, 40.0], atol=1e-3)


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_gaussian_window_is_the_normalised_11_tap_kernel():
    weights = gaussian_window(11, 1.5).numpy()
    x = np.arange(-5, 6)
    expected = np.exp(-x**2 / 4.5)
    assert np.allclose(weights, expected / expected.sum())
    assert weights.argmax() == 5 and weights.sum() == pytest.approx(1.0)


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(0).random((20, 24, 3))
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    tensor = torch.as_tensor(image, dtype=torch.float32)
    assert ssim(tensor, tensor) == pytest.approx(1.0, abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    # Constant images a and b: every variance and covariance is 0, so SSIM is
    # (2ab + C1) / (a^2 + b^2 + C1) everywhere, C1 = 0.01^2.
    a, b = 0.3, 0.5
    c1 = 1e-4
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((12, 12, 3), a), np.full((12, 12, 3), b)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("shape", [(32, 40, 3), (11, 11, 3), (17, 23, 1)])
def test_ssim_matches_scikit_image(shape):
    rng = np.random.default_rng(1)
    reference = rng.random(shape)
    image = np.clip(reference + rng.normal(0.0, 0.15, shape), 0.0, 1.0)
    expected = structural_similarity(
        image, reference, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
        channel_axis=-1,
    )
    assert ssim(image, reference) == pytest.approx(expected, abs=1e-4)
    assert ssim(torch.as_tensor(image, dtype=torch.float32), torch.as_tensor(reference)) == pytest.approx(
        expected, abs=1e-4
    )
    unrelated = rng.random(shape)
    expected = structural_similarity(
        unrelated, reference, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
        channel_axis=-1,
    )
    assert ssim(unrelated, reference) == pytest.approx(expected, abs=1e-4)


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 12, 3)), np.zeros((10, 12, 3)))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((12, 12, 3)), np.zeros((12, 13, 3)))
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        ssim(np.zeros((2, 12, 12, 3)), np.zeros((2, 12, 12, 3)))
