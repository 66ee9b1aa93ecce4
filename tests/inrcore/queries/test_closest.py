"""Intersection and closest-point queries by range analysis, on fields with known zero sets."""

import math

import pytest
import torch

from inrcore.fields.gradients import field_values
from inrcore.queries.closest import closest_point, intersect_fields
from tests.inrcore.analytic_fields import icosphere, octahedron


@pytest.mark.parametrize("mode", ["affine", "interval"])
def test_overlapping_spheres_intersect_with_a_witness(mode):
    a, b = icosphere(0.5, (-0.4, 0.0, 0.0)), icosphere(0.5, (0.4, 0.0, 0.0))  # centres 0.8 apart
    result = intersect_fields(*a, *b, mode=mode)
    assert result.intersects is True
    witness = result.witness
    assert witness.shape == (3,)
    assert float(field_values(*a, witness[None])[0]) <= 0 and float(field_values(*b, witness[None])[0]) <= 0
    # inside both balls (the fields are spheres to about 3e-4)
    assert float((witness - torch.tensor([-0.4, 0.0, 0.0])).norm()) < 0.501
    assert float((witness - torch.tensor([0.4, 0.0, 0.0])).norm()) < 0.501
    assert result.boxes >= 1


@pytest.mark.parametrize("mode", ["affine", "interval"])
def test_separate_spheres_are_certified_apart(mode):
    a, b = icosphere(0.5, (0.0, -0.6, 0.0)), icosphere(0.5, (0.0, 0.6, 0.0))  # centres 1.2 apart
    result = intersect_fields(*a, *b, mode=mode)
    assert result.intersects is False and result.witness is None and result.undecided == 0
    assert result.boxes > 1


def test_a_solid_inside_another_intersects():
    small, large = octahedron(0.1, (0.3, 0.3, 0.0)), icosphere(0.7)
    result = intersect_fields(*small, *large, mode="interval")
    assert result.intersects is True
    assert float(field_values(*small, result.witness[None])[0]) <= 0


def test_nearly_touching_solids_stay_undecided_when_boxes_run_out():
    a, b = icosphere(0.5, (-0.505, 0.0, 0.0)), icosphere(0.5, (0.505, 0.0, 0.0))  # gap 0.01
    result = intersect_fields(*a, *b, mode="interval", max_boxes=60)
    assert result.intersects is None and result.witness is None and result.undecided > 0
    finer = intersect_fields(*a, *b, mode="affine", min_size=1e-3)
    assert finer.intersects is False


def test_solids_outside_the_cube_do_not_count():
    a, b = octahedron(0.5, (0.0, 0.0, 1.4)), octahedron(0.5, (0.0, 0.0, 1.6))  # they meet only beyond z = 1
    assert intersect_fields(*a, *b, bound=1.0, mode="interval").intersects is False
    assert intersect_fields(*a, *b, bound=2.0, mode="interval").intersects is True


@pytest.mark.parametrize("mode", ["affine", "interval"])
def test_closest_point_on_a_sphere(mode):
    spec, params = icosphere(0.5)
    # (A query near the centre is slow: the ball around it nearly touches the sphere everywhere.)
    query = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, -0.8, 0.6]])
    tolerance = 1e-2 if mode == "affine" else 3e-2
    result = closest_point(spec, params, query, tolerance=tolerance, mode=mode)
    expected = 0.5 * query / query.norm(dim=-1, keepdim=True)
    assert torch.allclose(result.points, expected, atol=1e-3)
    assert torch.allclose(result.distances, torch.tensor([0.5, 0.2, 0.5]), atol=1e-3)
    assert (result.lower_bounds <= result.distances + 1e-6).all()
    assert (result.lower_bounds >= torch.tensor([0.5, 0.2, 0.5]) - 2 * tolerance).all()
    assert float(field_values(spec, params, result.points).abs().max()) < 1e-3


def test_closest_point_on_an_octahedron_is_exact():
    # f = (|x|_1 - 0.5) / sqrt(3): from (1, 0, 0) the nearest point is the vertex (0.5, 0, 0); from
    # (0.3, -0.4, 0.8) it is (0, -0.05, 0.45) on the edge x = 0 (minimise |q - p| over -y + z = 0.5).
    spec, params = octahedron(0.5)
    query = torch.tensor([[1.0, 0.0, 0.0], [0.3, -0.4, 0.8]])
    result = closest_point(spec, params, query, tolerance=1e-3, mode="affine")
    # (Newton polishing cannot slide along an edge, so the point is good to the tolerance; its
    # distance, which varies quadratically near the optimum, to far less.)
    assert torch.allclose(result.points, torch.tensor([[0.5, 0.0, 0.0], [0.0, -0.05, 0.45]]), atol=1e-3)
    assert torch.allclose(result.distances, torch.tensor([0.5, math.sqrt(0.335)]), atol=1e-5)
    assert torch.allclose(result.lower_bounds, result.distances, atol=2e-3)


def test_closest_point_without_a_surface():
    spec, params = octahedron(-0.2)  # (|x|_1 + 0.2) / sqrt(3) > 0 everywhere
    result = closest_point(spec, params, torch.tensor([[0.2, 0.3, 0.4]]), tolerance=1e-2, mode="interval")
    assert torch.isnan(result.points).all() and torch.isinf(result.distances).all()
    assert result.boxes == 1
