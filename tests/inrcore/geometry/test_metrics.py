"""Surface metrics against values worked out by hand.

`compare_meshes`' plain names measure samples to the other *surface* (exact point-to-triangle
distances), so their hand-worked values carry only Monte-Carlo error of the means; the
"_points" names measure samples to the other *samples*, as earlier versions did.

Sampling-noise bound used below for the "_points" figures: n points sampled uniformly on a
smooth surface of area A form (nearly) a Poisson process of density lam = n / A, whose
nearest-neighbour distance has mean 1 / (2 sqrt(lam)) = 0.5 sqrt(A / n). Two independent
sample sets of the *same* surface are therefore ~0.5 sqrt(A / n) apart on average (chamfer),
and a point is farther than tau from the other set with probability exp(-lam pi tau^2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from inrcore.geometry.metrics import (
    METRIC_NAMES,
    POINT_METRIC_NAMES,
    compare_meshes,
    compare_point_sets,
    fscore_of,
)
from inrcore.geometry.settings import MetricsConfig


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
    got = compare_meshes(sphere, sphere.copy(), MetricsConfig(n_points=n))
    # Point to point: area ~ pi (4 pi 0.25), side 1: expected chamfer 0.5 sqrt(pi / 1e5) = 0.0028.
    noise = 0.5 * math.sqrt(sphere.area / n)
    assert 0.8 * noise < got["chamfer_l1_points"] < 1.2 * noise
    # Point to surface: every sample lies on the other mesh; only rounding is left.
    assert got["chamfer_l1"] < 1e-6 and got["hausdorff"] < 1e-6
    assert got["chamfer_l1_points"] > got["chamfer_l1"] and got["hausdorff_points"] > got["hausdorff"]
    # tau = 0.01 sqrt(3): P(miss) = exp(-(n / A) pi tau^2) = exp(-30), i.e. no misses.
    assert got["fscore"] == 1.0 and got["precision"] == 1.0 and got["recall"] == 1.0
    assert got["fscore_points"] == 1.0
    # Nearest samples lie on the same or an adjacent face (dihedral ~ 4 degrees).
    assert got["normal_consistency_points"] > 0.995
    # The nearest triangle is the one the sample was drawn on: the same normal.
    assert got["normal_consistency"] > 1 - 1e-9
    # The largest gap is a few times the mean spacing.
    assert got["hausdorff_points"] < 10 * noise


def test_concentric_spheres_are_the_radius_gap_apart():
    reference, reconstruction = _sphere(0.5), _sphere(0.55)
    got = compare_meshes(reconstruction, reference, MetricsConfig(n_points=50_000))
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
    got = compare_meshes(reconstruction, reference, MetricsConfig(n_points=n))
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
    assert got["chamfer_l1_points"] == pytest.approx(exact + coincident * noise, abs=5e-4)  # 0.03588
    # Point to surface: the exact mean itself, up to the Monte-Carlo error of two means of
    # n = 1e5 distances in [0, t] (std < 0.05): ~1e-4.
    assert got["chamfer_l1"] == pytest.approx(exact, abs=4e-4)  # 0.03356
    # The farthest points are the whole +x face, exactly t away (to the surface: exactly t).
    assert got["hausdorff_points"] == pytest.approx(t, abs=3e-3)
    assert got["hausdorff_points"] >= t - 1e-9
    assert got["hausdorff"] == pytest.approx(t, abs=1e-12)
    # Within tau = 0.01 sqrt(3): the -x face band min(...) <= tau (area 1 - (1-2 tau)^2) and
    # 1 - t + tau of each side face: fraction ((1 - (1-2 tau)^2) + 4 (1 - t + tau)) / 6.
    tau = 0.01 * math.sqrt(3.0)
    within = ((1 - (1 - 2 * tau) ** 2) + 4 * (1 - t + tau)) / 6  # 0.6229
    assert got["precision"] == pytest.approx(within, abs=5e-3)
    assert got["recall"] == pytest.approx(within, abs=5e-3)
    assert got["fscore"] == pytest.approx(within, abs=5e-3)
    # Normals against the nearest triangle's (the same both ways, by symmetry): the +x face
    # and the coinciding parts of the side faces meet parallel faces (|cos| 1); on the -x
    # face inside B the band where a side face of B is nearer than t (area 1 - (1-2t)^2)
    # meets perpendicular faces (|cos| 0); the side strips beyond B's edge (area 4t) are
    # nearest to that edge, shared by a parallel and a perpendicular face: the mean, 1/2.
    band, strips = (1 - (1 - 2 * t) ** 2) / 6, 4 * t / 6  # 0.06, 0.0667; Monte-Carlo error ~1e-3
    assert got["normal_consistency"] == pytest.approx(1 - band - strips / 2, abs=3e-3)  # 0.9067


# ---- exact point-to-surface figures -----------------------------------------------------------

def _square(side: float, z: float = 0.0) -> trimesh.Trimesh:
    """The square [0, side]^2 at height z, two triangles, normal +z."""
    vertices = np.array([[0.0, 0, z], [side, 0, z], [side, side, z], [0, side, z]])
    return trimesh.Trimesh(vertices=vertices, faces=[[0, 1, 2], [0, 2, 3]], process=False)


def test_result_keys_are_the_surface_figures_then_the_point_figures():
    got = compare_meshes(_sphere(0.5), _sphere(0.55), MetricsConfig(n_points=2000))
    assert tuple(got) == METRIC_NAMES + POINT_METRIC_NAMES
    assert POINT_METRIC_NAMES == tuple(f"{name}_points" for name in METRIC_NAMES)


def test_a_mesh_against_itself_scores_zero_not_the_sampling_floor():
    # A closed box (sharp edges, 12 faces) and the open square: every sample of one lies on
    # the other's surface, so only rounding is left of the distances.
    for mesh in (trimesh.creation.box(extents=(1.0, 2.0, 0.5)), _square(2.0)):
        got = compare_meshes(mesh, mesh.copy(), MetricsConfig(n_points=20_000, seed=5))
        assert got["chamfer_l1"] < 1e-6 and got["hausdorff"] < 1e-6
        assert got["fscore"] == got["precision"] == got["recall"] == 1.0
        assert got["normal_consistency"] > 1 - 1e-9
        # The old point-to-point figure is still there, and it is the sampling floor:
        # 0.5 sqrt(area / n) / side, far above 1e-6.
        floor = 0.5 * math.sqrt(mesh.area / 20_000) / mesh.extents.max()
        assert 0.7 * floor < got["chamfer_l1_points"] < 1.3 * floor
        assert got["hausdorff_points"] > got["hausdorff"]


def test_square_against_itself_shifted_along_its_normal():
    # Side 2 (the unit: every distance is divided by 2), the copy d = 0.05 above: each sample
    # of either square projects inside the other, exactly d away.
    d, side = 0.05, 2.0
    reference, reconstruction = _square(side), _square(side, z=d)
    got = compare_meshes(reconstruction, reference, MetricsConfig(n_points=20_000))
    assert got["chamfer_l1"] == pytest.approx(d / side, rel=1e-9)  # 0.025
    assert got["hausdorff"] == pytest.approx(d / side, rel=1e-9)
    assert got["normal_consistency"] == pytest.approx(1.0, abs=1e-12)
    # tau = 0.01 sqrt(2^2 + 2^2) / 2 = 0.0141 < 0.025: nothing within; at 0.02 sqrt(2) = 0.0283, all.
    assert got["fscore"] == 0.0
    assert compare_meshes(reconstruction, reference, MetricsConfig(n_points=20_000, fscore_ratio=0.02))["fscore"] == 1.0
    # Point to point adds the lateral gap to the nearest sample: sqrt(d^2 + r^2) > d.
    assert got["chamfer_l1_points"] > d / side + 1e-4


def test_unit_cube_against_a_larger_concentric_cube():
    # B: the unit cube (side 1, the unit); A: the cube of side 1 + 2a about the same centre.
    a = 0.1
    reference = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    reconstruction = trimesh.creation.box(extents=(1 + 2 * a,) * 3)
    got = compare_meshes(reconstruction, reference, MetricsConfig(n_points=50_000))
    # B -> A: a point (1/2, y, z) of B, |y|, |z| <= 1/2, is min(a, 1/2 + a - |y|, 1/2 + a - |z|)
    # = a from A, exactly, everywhere. A -> B: a point (1/2 + a, y, z) of A is
    # sqrt(a^2 + u^2 + v^2) from B, u = max(|y| - 1/2, 0), v alike. Per face of A (area
    # (1 + 2a)^2): the centre 1 x 1 at a; four strips 1 x a, each
    #   int_0^a sqrt(a^2 + u^2) du = a^2 / 2 (sqrt 2 + asinh 1);
    # four corners a x a, each a^3 int int_[0,1]^2 sqrt(1 + x^2 + y^2) = a^3 C.
    from scipy.integrate import dblquad

    corner = dblquad(lambda y, x: math.sqrt(1 + x * x + y * y), 0, 1, 0, 1)[0]  # C = 1.2808
    strip = a * a / 2 * (math.sqrt(2) + math.asinh(1))
    mean_a = (a + 4 * strip + 4 * a**3 * corner) / (1 + 2 * a) ** 2  # 0.104885
    # Monte-Carlo error of the A mean: its distances lie in [a, a sqrt 3], std ~0.01: 5e-5.
    assert got["chamfer_l1"] == pytest.approx(0.5 * (a + mean_a), abs=2e-4)  # 0.102443
    # The farthest points are A's corners, a sqrt(3) from B's: the samples come close, never over.
    assert a * math.sqrt(3) - 0.01 < got["hausdorff"] <= a * math.sqrt(3) + 1e-12
    # Normals: B's samples all face a parallel face of A (|cos| 1). A's centres do too; A's
    # strips are nearest to an edge of B (a parallel and a perpendicular face: mean 1/2), its
    # corners to a corner of B (three faces, 90 degrees each, one parallel: mean 1/3).
    mean_cos_a = (1 + 4 * a * 0.5 + 4 * a * a / 3) / (1 + 2 * a) ** 2  # 0.8426
    assert got["normal_consistency"] == pytest.approx(0.5 * (1 + mean_cos_a), abs=1.5e-3)  # 0.9213
    # Every B sample is a away: with tau just above a all of B is within, just below none.
    ratio = a / math.sqrt(3)  # tau = ratio * diagonal sqrt 3 / side 1 = a
    n = 10_000
    assert compare_meshes(reconstruction, reference, MetricsConfig(n_points=n, fscore_ratio=ratio * (1 + 1e-9)))["recall"] == 1.0
    assert compare_meshes(reconstruction, reference, MetricsConfig(n_points=n, fscore_ratio=ratio * (1 - 1e-9)))["recall"] == 0.0


def test_zero_area_faces_are_no_surface():
    from inrcore.geometry.metrics import distances_to_surface

    # The unit square plus a degenerate face (a segment) at height 1 above it.
    square = _square(1.0)
    vertices = np.vstack([square.vertices, [[0.0, 0, 1], [1, 0, 1]]])
    faces = np.vstack([square.faces, [[4, 5, 5]]])
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    queries = np.array([[0.5, 0.0, 0.9], [0.25, 0.75, -0.5]])
    normals = np.array([[0.0, 0, 1], [0.6, 0, 0.8]])
    distances, cos = distances_to_surface(queries, normals, mesh)
    assert distances == pytest.approx([0.9, 0.5], abs=1e-12)
    assert cos == pytest.approx([1.0, 0.8], abs=1e-12)


def test_ties_on_edges_and_vertices_take_the_best_agreeing_face():
    from inrcore.geometry.metrics import distances_to_surface

    # The closed unit box: points beyond an edge or a corner are nearest to it, where two or
    # three faces (four or more triangles) are equally near.
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    queries = np.array([[0.7, 0.7, 0.0],      # beyond the +x+y edge, 0.2 sqrt 2 away
                        [0.6, 0.6, 0.6],      # beyond the +x+y+z corner, 0.1 sqrt 3 away
                        [0.2, 0.1, 0.8]])     # above the +z face, 0.3 away
    normals = np.array([[0.0, 1, 0], [0, 0, 1], [0.6, 0, 0.8]])
    distances, cos = distances_to_surface(queries, normals, box)
    assert distances == pytest.approx([0.2 * math.sqrt(2), 0.1 * math.sqrt(3), 0.3], rel=1e-12)
    # The mean over the equally near faces: the edge's +x and +y faces give |cos| 0 and 1;
    # the corner's +x, +y, +z faces (90 degrees each, however split into triangles) 0, 0, 1.
    assert cos == pytest.approx([0.5, 1 / 3, 0.8], rel=1e-12)
    # Whichever triangle libigl finds first: the same with the faces listed backwards, and with
    # the box's faces cut into other, smaller triangles. (At that corner the +z and +y faces have two
    # triangles each and +x one: without the angle weights the mean would be 2/5.)
    flipped = trimesh.Trimesh(vertices=box.vertices, faces=np.asarray(box.faces)[::-1], process=False)
    assert distances_to_surface(queries, normals, flipped)[1] == pytest.approx([0.5, 1 / 3, 0.8], rel=1e-12)
    finer = box.subdivide()
    assert distances_to_surface(queries, normals, finer)[1] == pytest.approx([0.5, 1 / 3, 0.8], rel=1e-12)


def test_metrics_are_in_unit_cube_units():
    reference = _sphere(0.5)
    reconstruction = trimesh.creation.box(extents=(0.8, 0.7, 0.9))
    small = compare_meshes(reconstruction, reference, MetricsConfig(n_points=20_000, seed=3))
    big = compare_meshes(
        reconstruction.copy().apply_scale(10.0), reference.copy().apply_scale(10.0), MetricsConfig(n_points=20_000, seed=3))
    assert small.keys() == big.keys()
    for name in small:
        assert big[name] == pytest.approx(small[name], rel=1e-9, abs=1e-12), name
    assert small["chamfer_l1"] > 0.01  # a box is not a sphere


def test_seed_makes_results_reproducible():
    a, b = _sphere(0.5), trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    assert compare_meshes(a, b, MetricsConfig(n_points=5000, seed=1)) == compare_meshes(a, b, MetricsConfig(n_points=5000, seed=1))


def test_meshes_without_faces_or_area_are_rejected():
    sphere = _sphere(0.5)
    empty = trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=int))
    with pytest.raises(ValueError, match="reconstruction mesh has no faces"):
        compare_meshes(empty, sphere, MetricsConfig(n_points=10))
    with pytest.raises(ValueError, match="reference mesh has no faces"):
        compare_meshes(sphere, empty, MetricsConfig(n_points=10))
    flat = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [2, 0, 0]], faces=[[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="no surface area"):
        compare_meshes(sphere, flat, MetricsConfig(n_points=10))


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
    from inrcore.geometry.metrics import compare_mesh_to_points

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)  # 10242 vertices on the sphere
    points, normals = _unit_vertices(mesh)
    values = compare_mesh_to_points(mesh, points, normals, MetricsConfig(n_points=20000, seed=0))
    assert set(values) == {"chamfer_l1", "fscore", "precision", "recall", "normal_consistency", "hausdorff"} | {
        f"{name}_points" for name in METRIC_NAMES}
    # Vertices lie on the mesh; what is left is the gap between mesh samples and the nearest
    # vertex, about 0.5 sqrt(A / 10242) / 2 = 0.0044 of the bbox side 2 for the mesh half.
    assert values["chamfer_l1"] < 0.008
    # Vertices to the surface are exactly 0; to the mesh samples 0.5 sqrt(A / 20000) / 2 more.
    assert values["chamfer_l1"] < values["chamfer_l1_points"]
    assert values["normal_consistency"] > 0.999 and values["fscore"] > 0.99


def test_mesh_against_a_larger_sphere_cloud_by_hand():
    from inrcore.geometry.metrics import compare_mesh_to_points

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    points, normals = _unit_vertices(mesh)
    values = compare_mesh_to_points(mesh, 1.1 * points, normals, MetricsConfig(n_points=20000, seed=0))
    # Every point is 0.1 from the other surface (plus sampling gaps); the cloud's bbox side is 2.2.
    assert 0.1 / 2.2 <= values["chamfer_l1"] < 0.1 / 2.2 + 0.002
    assert 0.1 / 2.2 <= values["hausdorff"] < 0.06
    # tau = 0.01 * sqrt(3) * 2.2 / 2.2 = 0.0173 < 0.045: nothing is within it.
    assert values["fscore"] == values["precision"] == values["recall"] == 0.0
    assert values["normal_consistency"] > 0.999


def test_mesh_against_points_subsamples_large_clouds_and_checks_inputs():
    from inrcore.geometry.metrics import compare_mesh_to_points

    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    points, normals = _unit_vertices(mesh)
    few = compare_mesh_to_points(mesh, points, normals, MetricsConfig(n_points=1000, seed=0))
    # 1000 of the 10242 vertices: sparser reference, larger gaps than with all of them.
    assert 0.015 < few["chamfer_l1_points"] < 0.04
    # To the surface the vertices are 0 away; the mesh samples are ~0.5 sqrt(A / 1000) from
    # the nearest of the 1000 vertices (A = 4 pi): 0.056, halved (one direction of two) and
    # divided by the side 2: 0.0140.
    expected = 0.5 * math.sqrt(mesh.area / 1000) / 2 / 2
    assert 0.85 * expected < few["chamfer_l1"] < 1.15 * expected
    assert few == compare_mesh_to_points(mesh, points, normals, MetricsConfig(n_points=1000, seed=0))
    with pytest.raises(ValueError, match="no faces"):
        compare_mesh_to_points(trimesh.Trimesh(), points, normals)
    with pytest.raises(ValueError, match="zero extent"):
        compare_mesh_to_points(mesh, np.zeros((5, 3)), normals[:5])
