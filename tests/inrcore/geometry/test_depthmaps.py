"""Depth images: the noise estimate and the edge-aware smoothing on depths worked out by hand (a linear
ramp, a step, known Gaussian noise). The normals are tested on real scans in tests/inrcore/shapespace/
test_scans.py (a plane and a sphere)."""

import numpy as np
import pytest

from inrcore.geometry.depthmaps import depth_noise, smooth_depth


def _ramp(size: int = 48) -> np.ndarray:
    """[size, size] a depth linear in the pixel coordinates: 2 + 0.01 row - 0.004 column."""
    rows, columns = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return 2.0 + 0.01 * rows - 0.004 * columns


def test_depth_noise_is_estimated_from_second_differences():
    ramp = _ramp()
    assert depth_noise(ramp) == pytest.approx(0.0, abs=1e-12)  # a linear depth's second differences vanish
    noisy = ramp + np.random.default_rng(0).normal(0.0, 0.03, ramp.shape)
    assert depth_noise(noisy) == pytest.approx(0.03, rel=0.05)
    # edges and misses: a step of 1 down the middle and a missing quarter change the median little
    stepped = noisy + np.where(np.arange(48) >= 24, 1.0, 0.0)[None, :]
    stepped[:12, :12] = np.inf
    assert depth_noise(stepped) == pytest.approx(0.03, rel=0.08)
    # one known second difference: rows (1, 2, 4) and (2, 4, 8)... too few runs for an estimate
    assert depth_noise(np.array([[1.0, 2.0, 4.0, 8.0]])) == 0.0


def test_smoothing_keeps_a_linear_depth_and_the_misses():
    ramp = _ramp()
    ramp[20:24, 30:] = np.inf  # misses: a strip out to the border
    smoothed = smooth_depth(ramp, noise=0.01, radius=4)
    hits = np.isfinite(ramp)
    np.testing.assert_array_equal(np.isfinite(smoothed), hits)
    np.testing.assert_allclose(smoothed[hits], ramp[hits], atol=1e-9)  # exact: a plane fit of a plane
    np.testing.assert_array_equal(smooth_depth(ramp, noise=0.01, radius=0), ramp)
    np.testing.assert_array_equal(smooth_depth(ramp, noise=0.0, radius=4), ramp)


def test_smoothing_averages_noise_but_not_across_a_depth_jump():
    ramp = _ramp()
    jump = np.where(np.arange(48) >= 24, 0.5, 0.0)[None, :]  # ten noise deviations: a separate surface
    noisy = ramp + jump + np.random.default_rng(1).normal(0.0, 0.05 / 3, ramp.shape)
    smoothed = smooth_depth(noisy, noise=0.05 / 3, radius=4)
    error = smoothed - (ramp + jump)
    raw = noisy - (ramp + jump)
    # inside: 81 pixels, Gaussian weights of deviation 2 pixels: about a fifth of the noise is left
    assert np.abs(error[6:-6, 6:-6]).std() < raw.std() / 3.5
    # beside the jump (the two columns each side) no pixel is pulled towards the other surface
    assert np.abs(error[:, 22:26]).max() < 4 * raw.std()
