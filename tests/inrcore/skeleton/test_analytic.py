"""Shapes with known medial axes: signed distances, meshes and axes against hand-worked values."""

from __future__ import annotations

import math

import igl
import numpy as np
import pytest
import torch

from inrcore.skeleton.analytic import ANALYTIC_SHAPES, box, capsule, cylinder, sphere, torus


def _sdf(shape, points) -> np.ndarray:
    return shape.sdf(torch.tensor(points, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("shape, points, expected", [
    # sphere of radius 0.8: centre, on the surface, outside
    (sphere(), [[0, 0, 0], [0.8, 0, 0], [0, 2, 0]], [-0.8, 0.0, 1.2]),
    # capsule r 0.35 along z, segment |z| <= 0.5: centre, pole, side, above the pole, beside
    (capsule(), [[0, 0, 0], [0, 0, 0.85], [0.35, 0, 0.3], [0, 0, 1.35], [1, 0, 0.2]],
     [-0.35, 0.0, 0.0, 0.5, 0.65]),
    # torus R 0.6 r 0.25 about z: the hole's centre, the core, outer equator, top, above the hole
    (torus(), [[0, 0, 0], [0.6, 0, 0], [0.85, 0, 0], [0, 0.6, 0.25], [0, 0, 1]],
     [0.35, -0.25, 0.0, 0.0, math.sqrt(1.36) - 0.25]),
    # box (0.8, 0.5, 0.35): centre, a face, beyond an edge (0.3, 0.4 outside), near the x face
    (box(), [[0, 0, 0], [0.8, 0, 0], [1.1, 0.9, 0.35], [0.7, 0, 0]], [-0.35, 0.0, 0.5, -0.1]),
    # cylinder r 0.35, |z| <= 0.8: centre, near a cap, beyond the rim (0.3, 0.4 outside)
    (cylinder(), [[0, 0, 0], [0, 0, 0.7], [0.65, 0, 1.2]], [-0.35, -0.1, 0.5]),
])
def test_sdf_at_hand_worked_points(shape, points, expected):
    assert _sdf(shape, points) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", sorted(ANALYTIC_SHAPES))
def test_sdf_gradient_has_unit_length_away_from_the_medial_axis(name):
    shape = ANALYTIC_SHAPES[name]()
    points = np.random.default_rng(0).uniform(-1.2, 1.2, (2000, 3))
    points = points[shape.distance_to_medial_axis(points) > 0.02]
    x = torch.tensor(points, requires_grad=True)
    (gradient,) = torch.autograd.grad(shape.sdf(x).sum(), x)
    assert len(points) > 1000
    assert gradient.norm(dim=1).numpy() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", sorted(ANALYTIC_SHAPES))
def test_sdf_follows_dtype(name):
    values = ANALYTIC_SHAPES[name]().sdf(torch.zeros(4, 3, dtype=torch.float32))
    assert values.dtype == torch.float32 and values.shape == (4,)


@pytest.mark.parametrize("name", sorted(ANALYTIC_SHAPES))
def test_mesh_is_watertight_with_its_vertices_on_the_surface(name):
    shape = ANALYTIC_SHAPES[name]()
    mesh = shape.mesh()
    assert mesh.is_watertight
    assert 4000 <= len(mesh.faces) <= 20000
    assert np.abs(_sdf(shape, mesh.vertices)).max() < 1e-9
    assert mesh.bounds[1] == pytest.approx(shape.bounding_half_extents(), abs=1e-9)
    assert shape.diagonal == pytest.approx(2 * np.linalg.norm(shape.bounding_half_extents()))


@pytest.mark.parametrize("name", sorted(ANALYTIC_SHAPES))
def test_medial_samples_lie_on_the_axis_with_their_inscribed_radius(name):
    shape = ANALYTIC_SHAPES[name]()
    samples = shape.medial_samples(1000)
    assert samples.shape[1] == 3 and (len(samples) == 1 if name == "sphere" else 500 < len(samples) < 2000)
    assert shape.distance_to_medial_axis(samples).max() < 1e-12
    radius = shape.true_radius(samples)
    assert radius == pytest.approx(-_sdf(shape, samples), abs=1e-15)
    mesh = shape.mesh()  # the inscribed radius is the distance to the surface
    squared, _, _ = igl.point_mesh_squared_distance(samples, np.asarray(mesh.vertices), np.asarray(mesh.faces))
    assert np.sqrt(squared) == pytest.approx(radius, abs=2e-3)


def test_constant_radii_of_tubes_and_the_sphere():
    assert sphere().true_radius(sphere().medial_samples()) == pytest.approx([0.8])
    assert capsule().true_radius(capsule().medial_samples(50)) == pytest.approx(0.35)
    assert torus().true_radius(torus().medial_samples(50)) == pytest.approx(0.25)


def test_distance_to_medial_axis_by_hand():
    assert sphere().distance_to_medial_axis([[0.3, 0.4, 0.0]]) == pytest.approx([0.5])
    assert capsule().distance_to_medial_axis([[0.3, 0.4, 0.7], [0.3, 0.4, 0.1]]) == pytest.approx(
        [math.sqrt(0.29), 0.5])
    assert torus().distance_to_medial_axis([[0.0, 0.9, 0.4], [0.0, 0.0, 0.0]]) == pytest.approx([0.5, 0.6])
    # cylinder: (s, z) = (0.2, 0.6) is nearest the cone's point (0.175, 0.625); the axis is 0.25 away
    assert cylinder().distance_to_medial_axis([[0.0, 0.2, 0.6], [0.0, 0.1, 0.2]]) == pytest.approx(
        [0.025 * math.sqrt(2.0), 0.1])
    # box: (0.5, 0, 0) is nearest the piece bisecting the x and z faces, at t = 0.325
    assert box().distance_to_medial_axis([[0.5, 0.0, 0.0], [0.0, 0.0, 0.2]]) == pytest.approx(
        [0.025 * math.sqrt(2.0), 0.2])


def _face_distances(half_extents, point) -> np.ndarray:
    h, p = np.asarray(half_extents), np.asarray(point)
    return np.sort(np.concatenate([h - p, h + p]))


def test_box_medial_points_are_equidistant_to_two_faces():
    shape = box()
    # on the middle rectangle z = 0 (|x| <= 0.45, |y| <= 0.15): both z faces at 0.35
    # on the piece bisecting the x+ and y+ faces: both at 0.1, the z faces 0.25 away
    for point, radius in (([0.3, 0.1, 0.0], 0.35), ([0.7, 0.4, 0.1], 0.1)):
        faces = _face_distances(shape.half_extents, point)
        assert faces[0] == pytest.approx(faces[1]) == pytest.approx(radius)
        assert shape.distance_to_medial_axis([point]) == pytest.approx([0.0], abs=1e-12)
        assert shape.true_radius([point]) == pytest.approx([radius])
    samples = shape.medial_samples(3000)
    ties = np.array([_face_distances(shape.half_extents, p)[:2] for p in samples])
    assert np.abs(ties[:, 0] - ties[:, 1]).max() < 1e-12


def test_cylinder_cone_points_are_equidistant_to_side_and_cap():
    samples = cylinder().medial_samples(2000)
    s, z = np.linalg.norm(samples[:, :2], axis=1), np.abs(samples[:, 2])
    cone = z > 0.45 + 1e-9
    assert cone.sum() > 500 and (~cone).sum() > 20
    assert 0.35 - s[cone] == pytest.approx(0.8 - z[cone], abs=1e-12)
    assert s[~cone] == pytest.approx(0.0)


def test_betti_numbers_and_names():
    assert {name: make().betti1 for name, make in ANALYTIC_SHAPES.items()} == {
        "sphere": 0, "capsule": 0, "torus": 1, "box": 0, "cylinder": 0}
    assert all(make().name == name for name, make in ANALYTIC_SHAPES.items())
    with pytest.raises(ValueError):
        torus(major=0.2, minor=0.3)
