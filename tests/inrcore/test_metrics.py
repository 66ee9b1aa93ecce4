"""Surface metrics against values worked out by hand.

Sampling-noise bound used below: n points sampled uniformly on a smooth surface of area A
form (nearly) a Poisson process of density lam = n / A, whose nearest-neighbour distance
has mean 1 / (2 sqrt(lam)) = 0.5 sqrt(A / n). Two independent sample sets of the *same*
surface are therefore ~0.5 sqrt(A / n) apart on average (chamfer), and a point is farther
than tau from the other set with probability exp(-lam pi tau^2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from inrcore.metrics import compare_meshes, compare_point_sets, fscore_of


def _sphere(radius: float) -> trimesh.Trimesh:
    # subdivisions=4: 5120 faces; vertices lie exactly on the sphere, the bbox side is 2r.
    return trimesh.creation.icosphere(subdivisions=4, radius=radius)


def test_hand_made_point_sets_give_exact_values():
    # A (reconstruction): three points on the x axis, normals +z.
    a = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
    na = np.tile([0.0, 0, 1], (3, 1))
    # B (reference): the same points lifted by 0.1, 0.2, 0.4, plus an outlier at x = 10.
    b = np.array([[0.0, 0, 0.1], [1, 0, 0.2], [2, 0, 0.4], [10, 0, 0]])
    nb = np.array([[0.0, 0, 1], [1, 0, 0], [0.6, 0, 0.8], [0, 0, -1]])
    # Raw nearest distances: A->B = 0.1, 0.2, 0.4; B->A = 0.1, 0.2, 0.4, 8 (to (2,0,0)).
    # Divided by scale 2: A->B = .05, .1, .2; B->A = .05, .1, .2, 4.
    got = compare_point_sets(a, na, b, nb, scale=2.0, tau=0.15)
    assert got["chamfer_l1"] == pytest.approx(0.5 * (0.35 / 3 + 4.35 / 4), rel=1e-12)  # 0.6020833
    assert got["hausdorff"] == pytest.approx(4.0, rel=1e-12)
    assert got["precision"] == pytest.approx(2 / 3, rel=1e-12)  # .05, .1 <= .15 < .2
    assert got["recall"] == pytest.approx(2 / 4, rel=1e-12)  # .05, .1 of four
    assert got["fscore"] == pytest.approx(4 / 7, rel=1e-12)  # 2 (2/3)(1/2) / (7/6)
    # |cos| A->B: 1, 0, 0.8 -> 0.6 ; B->A (every A normal is +z): 1, 0, 0.8, 1 -> 0.7.
    assert got["normal_consistency"] == pytest.approx(0.65, rel=1e-12)
    assert all(type(v) is float for v in got.values())


def test_far_apart_point_sets_have_zero_fscore():
    a = np.zeros((2, 3))
    b = np.array([[3.0, 0, 0], [0, 4, 0]])
    n = np.tile([1.0, 0, 0], (2, 1))
    got = compare_point_sets(a, n, b, n, scale=1.0, tau=1.0)
    assert (got["precision"], got["recall"], got["fscore"]) == (0.0, 0.0, 0.0)
    assert got["chamfer_l1"] == pytest.approx(0.5 * (3.0 + 3.5))
    assert got["hausdorff"] == pytest.approx(4.0)
    # normals: A->B pairs +x with +x (|cos| 1) both ways
    assert got["normal_consistency"] == pytest.approx(1.0)


def test_fscore_of_is_harmonic_mean():
    assert fscore_of(0.5, 1.0) == pytest.approx(2 / 3)
    assert fscore_of(0.0, 0.0) == 0.0


def test_identical_meshes_score_perfectly_up_to_sampling_noise():
    sphere = _sphere(0.5)
    n = 100_000
    got = compare_meshes(sphere, sphere.copy(), n_points=n)
    # Area ~ pi (4 pi 0.25), side 1: expected chamfer 0.5 sqrt(pi / 1e5) = 0.0028.
    noise = 0.5 * math.sqrt(sphere.area / n)
    assert 0.8 * noise < got["chamfer_l1"] < 1.2 * noise
    # tau = 0.01 sqrt(3): P(miss) = exp(-(n / A) pi tau^2) = exp(-30), i.e. no misses.
    assert got["fscore"] == 1.0 and got["precision"] == 1.0 and got["recall"] == 1.0
    # Nearest samples lie on the same or an adjacent face (dihedral ~ 4 degrees).
    assert got["normal_consistency"] > 0.995
    # The largest gap is a few times the mean spacing.
    assert got["hausdorff"] < 10 * noise


def test_concentric_spheres_are_the_radius_gap_apart():
    reference, reconstruction = _sphere(0.5), _sphere(0.55)
    got = compare_meshes(reconstruction, reference, n_points=50_000)
    side = reference.extents.max()
    assert side == pytest.approx(1.0)
    # Every sample is 0.05 radially from the other sphere; lateral sampling noise adds
    # E[r^2] / (2 * 0.05) ~ 2e-5 / 0.1 = 2e-4 at most.
    assert got["chamfer_l1"] == pytest.approx(0.05 / side, abs=1e-3)
    assert got["hausdorff"] == pytest.approx(0.05 / side, abs=3e-3)
    # tau = 0.01 * sqrt(3) = 0.0173 < 0.05: nothing is within tau.
    assert (got["precision"], got["recall"], got["fscore"]) == (0.0, 0.0, 0.0)
    # Radial nearest neighbours on concentric spheres: parallel normals.
    assert got["normal_consistency"] > 0.99


def test_box_against_translated_box():
    # Unit box B (reference) and the same box moved by t along x (A).
    t = 0.1
    reference = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    reconstruction = reference.copy()
    reconstruction.apply_translation([t, 0.0, 0.0])
    n = 100_000
    got = compare_meshes(reconstruction, reference, n_points=n)
    # Exact surface-to-surface mean distance of A's surface (area 6) to B:
    #   +x face: all at distance t                               -> integral t
    #   -x face (inside B): min(t, 1/2-|y|, 1/2-|z|)             -> 4/3 (1/8 - (1/2-t)^3)
    #   +-y, +-z faces: distance s in (0, t] on a strip of width t beyond B's edge,
    #   0 elsewhere                                              -> 4 * t^2 / 2
    # total 2t + 4t^3/3, mean t/3 + 2t^3/9; the other direction is the mirror image.
    exact = t / 3 + 2 * t**3 / 9  # 0.0335556
    # Sampling noise: where the surfaces coincide (fraction 4 (1 - t) / 6 = 0.6 of the area)
    # the nearest sample is 0.5 sqrt(A / n) = 0.00387 away on average instead of 0; at
    # distance d >= 0.1 it adds only ~E[r^2] / (2 d) ~ 1e-4.
    coincident = 4 * (1 - t) / 6
    noise = 0.5 * math.sqrt(6.0 / n)
    assert got["chamfer_l1"] == pytest.approx(exact + coincident * noise, abs=5e-4)  # 0.03588
    # The farthest points are the whole +x face, exactly t away.
    assert got["hausdorff"] == pytest.approx(t, abs=3e-3)
    assert got["hausdorff"] >= t - 1e-9
    # Within tau = 0.01 sqrt(3): the -x face band min(...) <= tau (area 1 - (1-2 tau)^2) and
    # 1 - t + tau of each side face: fraction ((1 - (1-2 tau)^2) + 4 (1 - t + tau)) / 6.
    tau = 0.01 * math.sqrt(3.0)
    within = ((1 - (1 - 2 * tau) ** 2) + 4 * (1 - t + tau)) / 6  # 0.6229
    assert got["precision"] == pytest.approx(within, abs=5e-3)
    assert got["recall"] == pytest.approx(within, abs=5e-3)
    assert got["fscore"] == pytest.approx(within, abs=5e-3)


def test_metrics_are_in_unit_cube_units():
    reference = _sphere(0.5)
    reconstruction = trimesh.creation.box(extents=(0.8, 0.7, 0.9))
    small = compare_meshes(reconstruction, reference, n_points=20_000, seed=3)
    big = compare_meshes(
        reconstruction.copy().apply_scale(10.0), reference.copy().apply_scale(10.0), n_points=20_000, seed=3
    )
    assert small.keys() == big.keys()
    for name in small:
        assert big[name] == pytest.approx(small[name], rel=1e-9, abs=1e-12), name
    assert small["chamfer_l1"] > 0.01  # a box is not a sphere


def test_seed_makes_results_reproducible():
    a, b = _sphere(0.5), trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    assert compare_meshes(a, b, n_points=5000, seed=1) == compare_meshes(a, b, n_points=5000, seed=1)


def test_meshes_without_faces_or_area_are_rejected():
    sphere = _sphere(0.5)
    empty = trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=int))
    with pytest.raises(ValueError, match="reconstruction mesh has no faces"):
        compare_meshes(empty, sphere, n_points=10)
    with pytest.raises(ValueError, match="reference mesh has no faces"):
        compare_meshes(sphere, empty, n_points=10)
    flat = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [2, 0, 0]], faces=[[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="no surface area"):
        compare_meshes(sphere, flat, n_points=10)


def test_bad_point_sets_are_rejected():
    p = np.zeros((3, 3))
    with pytest.raises(ValueError, match="points_a"):
        compare_point_sets(np.zeros((0, 3)), np.zeros((0, 3)), p, p, scale=1.0, tau=0.1)
    with pytest.raises(ValueError, match="normals_b"):
        compare_point_sets(p, p, p, np.zeros((2, 3)), scale=1.0, tau=0.1)
    with pytest.raises(ValueError, match="scale"):
        compare_point_sets(p, p, p, p, scale=0.0, tau=0.1)


# ---- a mesh against an oriented point cloud -------------------------------------------------

def _unit_vertices(mesh: trimesh.Trimesh):
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    return vertices, vertices / np.linalg.norm(vertices, axis=1, keepdims=True)


def test_mesh_against_its_own_vertices():
    from inrcore.metrics import compare_mesh_to_points

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)  # 10242 vertices on the sphere
    points, normals = _unit_vertices(mesh)
    values = compare_mesh_to_points(mesh, points, normals, n_points=20000, seed=0)
    assert set(values) == {"chamfer_l1", "fscore", "precision", "recall", "normal_consistency", "hausdorff"}
    # Vertices lie on the mesh; what is left is the gap between mesh samples and the nearest
    # vertex, about 0.5 sqrt(A / 10242) / 2 = 0.0044 of the bbox side 2 for the mesh half.
    assert values["chamfer_l1"] < 0.008
    assert values["normal_consistency"] > 0.999 and values["fscore"] > 0.99


def test_mesh_against_a_larger_sphere_cloud_by_hand():
    from inrcore.metrics import compare_mesh_to_points

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    points, normals = _unit_vertices(mesh)
    values = compare_mesh_to_points(mesh, 1.1 * points, normals, n_points=20000, seed=0)
    # Every point is 0.1 from the other surface (plus sampling gaps); the cloud's bbox side is 2.2.
    assert 0.1 / 2.2 <= values["chamfer_l1"] < 0.1 / 2.2 + 0.002
    assert 0.1 / 2.2 <= values["hausdorff"] < 0.06
    # tau = 0.01 * sqrt(3) * 2.2 / 2.2 = 0.0173 < 0.045: nothing is within it.
    assert values["fscore"] == values["precision"] == values["recall"] == 0.0
    assert values["normal_consistency"] > 0.999


def test_mesh_against_points_subsamples_large_clouds_and_checks_inputs():
    from inrcore.metrics import compare_mesh_to_points

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    points, normals = _unit_vertices(mesh)
    few = compare_mesh_to_points(mesh, points, normals, n_points=1000, seed=0)
    # 1000 of the 10242 vertices: sparser reference, larger gaps than with all of them.
    assert 0.015 < few["chamfer_l1"] < 0.04
    assert few == compare_mesh_to_points(mesh, points, normals, n_points=1000, seed=0)
    with pytest.raises(ValueError, match="no faces"):
        compare_mesh_to_points(trimesh.Trimesh(), points, normals)
    with pytest.raises(ValueError, match="zero extent"):
        compare_mesh_to_points(mesh, np.zeros((5, 3)), normals[:5])
