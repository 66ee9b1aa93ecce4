"""Skeleton figures against hand-worked complexes, axes and balls."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from inrcore.skeleton.analytic import capsule, sphere, torus
from inrcore.skeleton.metrics import (
    ball_union_fidelity,
    distances_to_union_boundary,
    medial_accuracy,
    sample_union_boundary,
    skeleton_topology,
)
from inrcore.skeleton.skeletonfiles import balls_mesh


NO_EDGES = np.zeros((0, 2), dtype=np.int64)
NO_FACES = np.zeros((0, 3), dtype=np.int64)


@pytest.mark.parametrize("num_points, edges, faces, expected", [
    # a triangle's three sides: one loop
    (3, [[0, 1], [1, 2], [2, 0]], NO_FACES, dict(components=1, betti1=1, edges=3, faces=0)),
    # the same, filled: the loop bounds a face
    (3, [[0, 1], [1, 2], [2, 0]], [[0, 1, 2]], dict(components=1, betti1=0, edges=3, faces=1)),
    # the face alone brings its own sides
    (3, NO_EDGES, [[2, 1, 0]], dict(components=1, betti1=0, edges=3, faces=1)),
    # a path
    (4, [[0, 1], [1, 2], [2, 3]], NO_FACES, dict(components=1, betti1=0, edges=3, faces=0)),
    # two separate edges
    (4, [[0, 1], [2, 3]], NO_FACES, dict(components=2, betti1=0, edges=2, faces=0)),
    # an edge and an isolated point
    (3, [[0, 1]], NO_FACES, dict(components=2, betti1=0, edges=1, faces=0)),
    # repeated and reversed edges count once; a loop edge i-i not at all
    (3, [[0, 1], [1, 0], [1, 2], [2, 2]], NO_FACES, dict(components=1, betti1=0, edges=2, faces=0)),
    # a tetrahedron's boundary: a sphere, no loop (b2 = 1 takes the fourth face)
    (4, NO_EDGES, [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], dict(components=1, betti1=0, edges=6, faces=4)),
    # two triangles sharing a corner, unfilled: two loops
    (5, [[0, 1], [1, 2], [2, 0], [2, 3], [3, 4], [4, 2]], NO_FACES, dict(components=1, betti1=2, edges=6)),
    # a square of two triangles with a dangling edge
    (5, [[3, 4]], [[0, 1, 2], [0, 2, 3]], dict(components=1, betti1=0, edges=6, faces=2)),
])
def test_topology_by_hand(num_points, edges, faces, expected):
    figures = skeleton_topology(num_points, edges, faces)
    assert {key: figures[key] for key in expected} == expected
    assert figures["balls"] == num_points
    assert figures["euler"] == num_points - figures["edges"] + figures["faces"]


def test_topology_of_a_torus_surface_and_a_ring():
    mesh = torus().mesh(major_sections=24, minor_sections=12)
    figures = skeleton_topology(len(mesh.vertices), NO_EDGES, mesh.faces)
    assert (figures["components"], figures["betti1"], figures["euler"]) == (1, 2, 0)
    ring = np.stack([np.arange(24), (np.arange(24) + 1) % 24], axis=1)
    assert skeleton_topology(24, ring, NO_FACES)["betti1"] == torus().betti1 == 1
    # an annulus: the ring's triangles between an inner and an outer circle of 6 points
    inner, outer = np.arange(6), np.arange(6) + 6
    annulus = np.concatenate([np.stack([inner, outer, np.roll(outer, -1)], axis=1),
                              np.stack([inner, np.roll(outer, -1), np.roll(inner, -1)], axis=1)])
    assert skeleton_topology(12, NO_EDGES, annulus)["betti1"] == 1


def test_topology_refuses_bad_indices():
    with pytest.raises(ValueError):
        skeleton_topology(2, [[0, 2]], NO_FACES)


def test_medial_accuracy_of_a_sphere():
    shape = sphere()
    diagonal = shape.diagonal
    exact = medial_accuracy([[0.0, 0.0, 0.0]], [0.8], shape.distance_to_medial_axis, shape.medial_samples(),
                            shape.true_radius, diagonal)
    assert exact == dict(axis_mean=0.0, axis_max=0.0, completeness_mean=0.0, completeness_max=0.0,
                         radius_error_mean=0.0)
    # displaced by 0.1 with the radius it has there (0.7), then with the centre's radius
    moved = medial_accuracy([[0.0, 0.1, 0.0]], [0.7], shape.distance_to_medial_axis, shape.medial_samples(),
                            shape.true_radius, diagonal)
    assert moved["axis_mean"] == moved["axis_max"] == pytest.approx(0.1 / diagonal)
    assert moved["completeness_max"] == pytest.approx(0.1 / diagonal)
    assert moved["radius_error_mean"] == pytest.approx(0.0, abs=1e-15)
    wrong = medial_accuracy([[0.0, 0.1, 0.0]], [0.8], shape.distance_to_medial_axis, shape.medial_samples(),
                            None, diagonal)
    assert wrong["radius_error_mean"] is None


def test_medial_accuracy_of_a_sparse_capsule_skeleton():
    shape = capsule()  # the axis: |z| <= 0.5 on the z axis; three points leave 0.25 gaps
    points = [[0.0, 0.0, -0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]
    figures = medial_accuracy(points, [0.35, 0.3, 0.35], shape.distance_to_medial_axis,
                              shape.medial_samples(1001), shape.true_radius, diagonal=2.0)
    assert figures["axis_max"] == 0.0
    assert figures["completeness_max"] == pytest.approx(0.25 / 2.0)
    assert figures["completeness_mean"] == pytest.approx(0.125 / 2.0, rel=0.01)  # uniform in [0, 0.25]
    assert figures["radius_error_mean"] == pytest.approx(0.05 / 3 / 2.0)


def test_medial_accuracy_without_points():
    figures = medial_accuracy(np.zeros((0, 3)), np.zeros(0), sphere().distance_to_medial_axis,
                              sphere().medial_samples(), None, 1.0)
    assert set(figures.values()) == {None}


@pytest.fixture(scope="module")
def fine_sphere() -> trimesh.Trimesh:
    return sphere().mesh(subdivisions=4)


def test_a_sphere_is_its_own_ball(fine_sphere):
    diagonal = sphere().diagonal
    figures = ball_union_fidelity([[0.0, 0.0, 0.0]], [0.8], fine_sphere, diagonal)
    assert figures["hausdorff"] < 0.005 and figures["chamfer"] < 0.005
    assert figures["coverage"] == pytest.approx(1.0)


def test_half_the_radius_misses_by_half_the_radius(fine_sphere):
    diagonal = sphere().diagonal
    figures = ball_union_fidelity([[0.0, 0.0, 0.0]], [0.4], fine_sphere, diagonal)
    assert figures["hausdorff"] == pytest.approx(0.4 / diagonal, rel=0.01)
    assert figures["chamfer"] == pytest.approx(0.4 / diagonal, rel=0.01)
    assert figures["coverage"] == 0.0


def test_two_balls_against_their_union_mesh():
    centres, radii = np.array([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0]]), np.array([0.5, 0.4])
    figures = ball_union_fidelity(centres, radii, balls_mesh(centres, radii), diagonal=2.0)
    assert figures["hausdorff"] < 0.005 and figures["chamfer"] < 0.001
    assert figures["coverage"] > 0.99
    assert ball_union_fidelity(np.zeros((0, 3)), np.zeros(0), balls_mesh(centres, radii), 2.0)["chamfer"] is None


def test_union_boundary_samples_and_distances():
    centres, radii = np.array([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0]]), np.array([0.5, 0.4])
    boundary = sample_union_boundary(centres, radii, 5000, np.random.default_rng(0))
    assert len(boundary) == 5000
    gaps = np.linalg.norm(boundary[:, None] - centres[None], axis=2) - radii  # [n, 2]
    assert np.abs(gaps.min(axis=1)).max() < 1e-12  # on one sphere, inside neither
    assert (gaps > -1e-12).all()
    # (2, 0, 0) is 1 from the small sphere; the origin 0.5 from the big one's far side;
    # (0.3, 0, 0) sits 0.4 deep in the big ball but the crease circle is nearer
    crease_x = (0.6**2 + 0.5**2 - 0.4**2) / (2 * 0.6)
    crease = np.hypot(crease_x - 0.3, np.sqrt(0.5**2 - crease_x**2))
    found = distances_to_union_boundary(np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.3, 0.0, 0.0]]),
                                        centres, radii, boundary)
    assert found[:2] == pytest.approx([1.0, 0.5], abs=1e-12)
    assert crease < 0.4 and found[2] == pytest.approx(crease, abs=0.01)
