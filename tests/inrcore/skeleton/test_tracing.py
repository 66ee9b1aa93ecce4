"""Tests of inrcore/skeleton/tracing.py on exact distance fields (no training), against their true medial axes."""

import numpy as np
import pytest
import torch

from inrcore.queries.isopoints import extract_isopoints
from inrcore.skeleton.analytic import capsule, sphere, torus
from inrcore.skeleton.settings import TraceConfig
from inrcore.skeleton.tracing import (
    difference_gradient_norms,
    inward_extents,
    radii_to_surface,
    thinned_indices,
    trace_skeleton,
)


def field_of(shape):
    return lambda points: shape.sdf(points)[:, None]


def surface_of(shape, n=1500):
    return extract_isopoints(field_of(shape), n, generator=torch.Generator().manual_seed(0)).points


@pytest.mark.parametrize("make", [sphere, capsule, torus])
def test_traced_points_lie_on_the_true_medial_axis_with_the_inscribed_radius(make):
    shape = make()
    traced = trace_skeleton(field_of(shape), surface_of(shape), TraceConfig())
    assert len(traced.points) >= 1 and traced.traced > 1000
    distance = shape.distance_to_medial_axis(traced.points)
    assert distance.max() < 1e-3 * shape.diagonal
    assert traced.radii == pytest.approx(shape.true_radius(traced.points), abs=1e-2)
    # Thinning leaves no two points closer than its radius.
    if len(traced.points) > 1:
        from scipy.spatial import cKDTree

        nearest, _ = cKDTree(traced.points).query(traced.points, k=2)
        assert nearest[:, 1].min() >= 0.01


def test_the_sphere_traces_to_its_centre_once_thinned():
    traced = trace_skeleton(field_of(sphere(0.8)), surface_of(sphere(0.8), 500), TraceConfig())
    assert traced.points.shape == (1, 3)
    assert np.linalg.norm(traced.points[0]) < 1e-3
    assert traced.radii[0] == pytest.approx(0.8, abs=3e-3)


def test_the_torus_core_circle_is_covered_all_round():
    shape = torus()
    traced = trace_skeleton(field_of(shape), surface_of(shape), TraceConfig())
    angles = np.arctan2(traced.points[:, 1], traced.points[:, 0])
    counts, _ = np.histogram(angles, bins=36, range=(-np.pi, np.pi))
    assert counts.min() >= 1  # no gap of 10 degrees along the core circle


def test_difference_gradient_norms_by_hand():
    # u = |x| - 0.8: norm 1 away from the centre; at the centre each axis' central difference is 0.
    field = field_of(sphere(0.8))
    points = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.005, 0.0, 0.0]], dtype=torch.float64)
    norms = difference_gradient_norms(field, points, torch.full((3,), 0.01, dtype=torch.float64), 64)
    # At x = 0.005 with h = 0.01: (|0.015| - |-0.005|) / 0.02 = 0.5 along x, sqrt(0.005^2 + 0.01^2)
    # - 0.005 both ways along y and z, which cancel.
    assert norms.numpy() == pytest.approx([1.0, 0.0, 0.5], abs=1e-9)


def test_inward_extents_stop_at_the_first_sample_outside():
    # A sphere of radius 0.33 centred at the origin, from (0.33, 0, 0) inward along -x: outside
    # beyond t = 0.66; with 10 samples over length 1 (t = 0.1, ..., 1.0) the first outside one is t = 0.7.
    config = TraceConfig(march_length=1.0, march_samples=10)
    start = torch.tensor([[0.33, 0.0, 0.0]], dtype=torch.float64)
    direction = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    t = inward_extents(field_of(sphere(0.33)), start, direction, config, bound=1.0)
    assert float(t[0]) == pytest.approx(0.7)
    # Staying inside all the way gives the whole length.
    assert float(inward_extents(field_of(sphere(0.95)), 0.95 * direction, direction, config, 1.0)[0]) == pytest.approx(1.0)


def test_thinning_keeps_the_first_of_each_close_group():
    points = np.array([[0.0, 0, 0], [0.005, 0, 0], [0.02, 0, 0], [0.024, 0, 0], [1.0, 0, 0]])
    assert thinned_indices(points, 0.01).tolist() == [0, 2, 4]
    assert thinned_indices(points, 0.0).tolist() == [0, 1, 2, 3, 4]


def test_radii_are_distances_to_the_nearest_surface_sample():
    surface = np.array([[1.0, 0, 0], [0, 2.0, 0]])
    assert radii_to_surface(np.array([[0.0, 0, 0], [0, 1.5, 0]]), surface) == pytest.approx([1.0, 0.5])
    assert radii_to_surface(np.zeros((0, 3)), surface).shape == (0,)


def test_no_surface_gives_no_points():
    traced = trace_skeleton(field_of(sphere()), torch.zeros((0, 3)), TraceConfig())
    assert traced.points.shape == (0, 3) and traced.traced == 0
