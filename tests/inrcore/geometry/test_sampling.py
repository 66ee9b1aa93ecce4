"""Signed distances and SDF samples against analytic SDFs of a sphere and a box.

The sphere is trimesh's icosphere (subdivisions=5, radius 0.5): its vertices lie on the sphere
and its flat faces dip at most 1.42e-4 inside it, so the mesh SDF differs from |p| - 0.5 by at
most that much. The box mesh is exact: its SDF is the analytic box SDF up to rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from inrcore.geometry.meshes import load_mesh, normalise_mesh
from inrcore.geometry.sampling import ShapeSamples, near_counts, sample_sdf, sample_surface, signed_distance
from inrcore.geometry.settings import SamplingConfig


DATASETS = Path(__file__).resolve().parents[3] / "datasets" / "meshes"
RADIUS = 0.5


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=RADIUS)


def _box_sdf(points: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Analytic SDF [N] of the axis-aligned box [-half, half] at points [N, 3]."""
    q = np.abs(points) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


# ---------------------------------------------------------------- signed_distance


def test_sphere_matches_analytic_sdf(sphere):
    points = np.random.default_rng(0).uniform(-1, 1, size=(4000, 3))
    sdf, closest = signed_distance(sphere, points)
    exact = np.linalg.norm(points, axis=1) - RADIUS
    assert sdf.shape == (4000,) and sdf.dtype == np.float64
    assert closest.shape == (4000, 3) and closest.dtype == np.float64
    assert np.abs(sdf - exact).max() < 2e-3
    far = np.abs(exact) > 0.01
    assert far.sum() > 3500
    np.testing.assert_array_equal(np.sign(sdf[far]), np.sign(exact[far]))
    # the closest points lie on the mesh, at distance |sdf|
    np.testing.assert_allclose(np.linalg.norm(points - closest, axis=1), np.abs(sdf), atol=1e-12)
    assert np.abs(np.linalg.norm(closest, axis=1) - RADIUS).max() < 1.5e-4


def test_box_hand_worked_points():
    box = trimesh.creation.box(extents=(0.4, 0.6, 1.0))  # half sides 0.2, 0.3, 0.5
    points = np.array([
        [0.0, 0.0, 0.0],  # nearest faces x = +-0.2: -0.2
        [0.1, 0.0, 0.0],  # face x = 0.2: -0.1
        [1.0, 0.0, 0.0],  # face x = 0.2: 0.8
        [0.5, 0.6, 0.0],  # edge (0.2, 0.3, z): sqrt(0.3^2 + 0.3^2)
        [0.5, 0.7, 1.5],  # corner (0.2, 0.3, 0.5): sqrt(0.09 + 0.16 + 1)
    ])
    sdf, closest = signed_distance(box, points)
    np.testing.assert_allclose(sdf, [-0.2, -0.1, 0.8, np.sqrt(0.18), np.sqrt(1.25)], atol=1e-12)
    np.testing.assert_allclose(closest[2], [0.2, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(closest[4], [0.2, 0.3, 0.5], atol=1e-12)


def test_box_matches_analytic_sdf():
    half = np.array([0.2, 0.3, 0.5])
    box = trimesh.creation.box(extents=2 * half)
    points = np.random.default_rng(1).uniform(-0.8, 0.8, size=(4000, 3))
    sdf, _ = signed_distance(box, points)
    exact = _box_sdf(points, half)
    np.testing.assert_allclose(np.abs(sdf), np.abs(exact), atol=1e-12)
    clear = np.abs(exact) > 1e-3
    np.testing.assert_allclose(sdf[clear], exact[clear], atol=1e-12)


def test_open_sphere_keeps_inside_negative():
    # Remove a polar cap (faces with centroid z > 0.4, about a 37 degree opening): the mesh is
    # no longer watertight, but the winding number is still near 1 deep inside.
    closed = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    keep = closed.triangles_center[:, 2] <= 0.4
    open_sphere = trimesh.Trimesh(closed.vertices, closed.faces[keep], process=False)
    assert not open_sphere.is_watertight and keep.sum() < len(keep)

    rng = np.random.default_rng(2)
    directions = rng.normal(size=(2000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    inside = directions * rng.uniform(0.0, 0.35, size=(2000, 1))
    outside = directions * rng.uniform(0.65, 1.0, size=(2000, 1))
    under_hole = np.array([[0.0, 0.0, 0.3], [0.05, 0.0, 0.35]])
    above_hole = np.array([[0.0, 0.0, 0.7], [0.0, 0.05, 0.6]])

    assert (signed_distance(open_sphere, inside)[0] < 0).all()
    assert (signed_distance(open_sphere, under_hole)[0] < 0).all()
    assert (signed_distance(open_sphere, outside)[0] > 0).all()
    assert (signed_distance(open_sphere, above_hole)[0] > 0).all()
    # magnitudes stay exact near the hole, where the nearest surface is the rim (about 0.304
    # from (0, 0, 0.3)): compare with trimesh's independent closest-point search
    probes = np.concatenate([under_hole, above_hole])
    sdf, _ = signed_distance(open_sphere, probes)
    _, distance, _ = trimesh.proximity.closest_point(open_sphere, probes)
    np.testing.assert_allclose(np.abs(sdf), distance, atol=1e-12)
    assert abs(sdf[0]) > 0.3


def test_scanned_bunny_sign_along_normals():
    # The demo bunny is not watertight (holes in its base). Points pushed 0.002 off its
    # surface along the face normal are outside, pushed the other way inside.
    mesh, _ = normalise_mesh(load_mesh(DATASETS / "bunny.obj"), extent=0.9)
    assert not mesh.is_watertight
    points, normals = sample_surface(mesh, 2000, np.random.default_rng(5))
    outside, _ = signed_distance(mesh, points + 0.002 * normals)
    inside, _ = signed_distance(mesh, points - 0.002 * normals)
    assert (outside > 0).all() and (inside < 0).all()
    assert np.abs(outside).max() <= 0.002 + 1e-12 and np.abs(inside).max() <= 0.002 + 1e-12


def test_sign_does_not_depend_on_face_orientation(sphere):
    inward = trimesh.Trimesh(sphere.vertices, sphere.faces[:, ::-1], process=False)
    points = np.random.default_rng(3).uniform(-1, 1, size=(500, 3))
    flipped, original = signed_distance(inward, points)[0], signed_distance(sphere, points)[0]
    np.testing.assert_array_equal(np.sign(flipped), np.sign(original))
    np.testing.assert_allclose(flipped, original, rtol=0, atol=1e-12)  # same triangles, reordered corners


def test_batches_give_the_same_answer(sphere):
    points = np.random.default_rng(4).uniform(-1, 1, size=(101, 3))
    whole = signed_distance(sphere, points)
    batched = signed_distance(sphere, points, batch_size=7)
    np.testing.assert_array_equal(whole[0], batched[0])
    np.testing.assert_array_equal(whole[1], batched[1])


def test_signed_distance_edge_cases(sphere):
    sdf, closest = signed_distance(sphere, np.zeros((0, 3)))
    assert sdf.shape == (0,) and closest.shape == (0, 3)
    with pytest.raises(ValueError, match=r"\[M, 3\]"):
        signed_distance(sphere, np.zeros((4, 2)))


# ---------------------------------------------------------------- sample_sdf

CONFIG = SamplingConfig(n_surface=600, n_near=1200, near_sigmas=(0.01, 0.1), n_uniform=400, seed=7)


@pytest.fixture(scope="module")
def samples(sphere) -> ShapeSamples:
    return sample_sdf(sphere, CONFIG)


def test_near_counts_split_evenly():
    assert near_counts(1200, 2) == [600, 600]
    assert near_counts(7, 3) == [3, 2, 2]
    assert near_counts(0, 0) == []


def test_shapes_dtypes_and_counts(samples):
    assert samples.points.shape == (2200, 3) and samples.points.dtype == np.float32
    assert samples.normals.shape == (2200, 3) and samples.normals.dtype == np.float32
    assert samples.sdf.shape == (2200,) and samples.sdf.dtype == np.float32
    assert samples.n_surface == 600
    assert samples.counts == {"surface": 600, "near": [600, 600], "uniform": 400}


def test_deterministic_for_a_seed(sphere, samples):
    again = sample_sdf(sphere, CONFIG)
    for name in ("points", "normals", "sdf"):
        np.testing.assert_array_equal(getattr(again, name), getattr(samples, name))
    other = sample_sdf(sphere, SamplingConfig(**{**CONFIG.__dict__, "seed": 8}))
    assert not np.array_equal(other.points, samples.points)


def test_surface_rows(samples):
    points, normals = samples.points[:600], samples.normals[:600]
    assert (samples.sdf[:600] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    radius = np.linalg.norm(points, axis=1)
    assert np.abs(radius - RADIUS).max() < 1.5e-4  # on the faces, which dip <= 1.42e-4
    radial = points / radius[:, None]
    assert (np.sum(normals * radial, axis=1) > 0.999).all()  # outward face normals


def test_off_surface_rows_match_the_analytic_sdf(samples):
    points = samples.points[600:].astype(np.float64)
    exact = np.linalg.norm(points, axis=1) - RADIUS
    assert np.abs(samples.sdf[600:] - exact).max() < 2e-3
    far = np.abs(exact) > 0.01
    np.testing.assert_array_equal(np.sign(samples.sdf[600:][far]), np.sign(exact[far]))
    uniform = samples.points[-400:]
    assert uniform.min() >= -1 and uniform.max() <= 1 and np.ptp(uniform, axis=0).min() > 1.8


def test_near_groups_have_their_sigma(samples):
    # The SDF of a surface point plus N(0, sigma^2 I) noise is about the normal component of
    # the noise, so its standard deviation is about sigma.
    for sigma, rows in ((0.01, slice(600, 1200)), (0.1, slice(1200, 1800))):
        spread = float(np.std(samples.sdf[rows]))
        assert abs(spread - sigma) < 0.3 * sigma, (sigma, spread)


def test_off_surface_normals_are_the_sdf_gradient(samples):
    # The sphere's SDF |p| - r has gradient p / |p| inside and outside alike: the unsigned
    # direction (p - closest) / |p - closest| points outward outside and inward inside, and
    # the factor sign(sdf) turns it outward in both cases.
    points = samples.points[600:].astype(np.float64)
    normals = samples.normals[600:].astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    radius = np.linalg.norm(points, axis=1)
    away_from_centre = radius > 0.1
    cosine = np.sum(normals * points, axis=1)[away_from_centre] / radius[away_from_centre]
    assert (cosine > 0.99).all()
    inside = samples.sdf[600:] < 0
    assert 100 < inside.sum() < len(inside) - 100  # both sides are exercised


def test_sample_sdf_without_off_surface_points(sphere):
    config = SamplingConfig(n_surface=50, n_near=0, near_sigmas=(), n_uniform=0, seed=0)
    samples = sample_sdf(sphere, config)
    assert samples.points.shape == (50, 3) and samples.n_surface == 50
    assert samples.counts == {"surface": 50, "near": [], "uniform": 0}


def test_gradient_on_the_surface_falls_back_to_the_face_normal():
    # (0.2, 0.05, 0.1) lies inside the face x = +0.2 of the box: p - closest is zero, so the
    # face normal (+x) stands in for the undefined direction.
    from inrcore.geometry.sampling import _sdf_and_gradient

    box = trimesh.creation.box(extents=(0.4, 0.6, 1.0))
    sdf, gradient = _sdf_and_gradient(box, np.array([[0.2, 0.05, 0.1], [0.5, 0.0, 0.0], [0.1, 0.0, 0.0]]))
    np.testing.assert_allclose(sdf, [0.0, 0.3, -0.1], atol=1e-12)
    np.testing.assert_allclose(gradient, [[1, 0, 0], [1, 0, 0], [1, 0, 0]], atol=1e-12)


def test_shape_samples_checks_shapes():
    with pytest.raises(ValueError, match="inconsistent shapes"):
        ShapeSamples(points=np.zeros((3, 3)), normals=np.zeros((2, 3)), sdf=np.zeros(3), n_surface=0)
    with pytest.raises(ValueError, match="n_surface"):
        ShapeSamples(points=np.zeros((3, 3)), normals=np.zeros((3, 3)), sdf=np.zeros(3), n_surface=4)


def test_neighbour_scales_on_a_regular_grid_by_hand():
    from inrcore.geometry.sampling import neighbour_scales

    axis = np.arange(5) * 0.1
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    scales = neighbour_scales(grid, k=6)
    centre = np.flatnonzero(np.all(np.isclose(grid, 0.2), axis=1))[0]
    assert scales[centre] == pytest.approx(0.1)  # six face neighbours at 0.1
    assert scales.max() > 0.1  # corners reach further for their 6th neighbour
    with pytest.raises(ValueError, match="need more than k = 6 points"):
        neighbour_scales(grid[:5], k=6)


def test_eikonal_points_follow_their_local_scales():
    from inrcore.geometry.sampling import sample_eikonal_points

    rng = np.random.default_rng(0)
    points = np.zeros((2, 3))
    scales = np.array([0.01, 0.01])
    sampled = sample_eikonal_points(points, scales, n_near=20000, n_uniform=100, rng=rng, bound=0.5)
    assert sampled.shape == (20100, 3)
    assert np.std(sampled[:20000]) == pytest.approx(0.01, rel=0.05)
    assert np.abs(sampled[20000:]).max() <= 0.5 and np.abs(sampled[20000:]).max() > 0.3


# ---- oriented point clouds ----------------------------------------------------------------

def _cloud(n: int = 10):
    """n points [n, 3] on a wavy ring of radius 0.5 (not planar) and their outward normals [n, 3]."""
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    points = np.c_[0.5 * np.cos(angles), 0.5 * np.sin(angles), 0.1 * np.cos(3 * angles)]
    normals = np.c_[np.cos(angles), np.sin(angles), np.zeros(n)]
    return points, normals


def test_point_cloud_samples_replay_the_documented_draws():
    from inrcore.geometry.sampling import sample_point_cloud

    points, normals = _cloud(10)
    config = SamplingConfig(n_surface=5, n_near=7, near_sigmas=(0.01, 0.1), n_uniform=3, seed=4)
    samples = sample_point_cloud(points, normals, config)
    assert samples.counts == {"surface": 5, "near": [4, 3], "uniform": 3}
    assert samples.n_surface == 5 and samples.points.shape == (15, 3) and samples.points.dtype == np.float32

    # The same draws in the documented order, by hand.
    rng = np.random.default_rng(4)
    pick = rng.choice(10, size=5, replace=False)
    near_a = points[rng.integers(10, size=4)] + rng.normal(0.0, 0.01, size=(4, 3))
    near_b = points[rng.integers(10, size=3)] + rng.normal(0.0, 0.1, size=(3, 3))
    uniform = rng.uniform(-1.0, 1.0, size=(3, 3))
    assert len(set(pick.tolist())) == 5  # enough points: no repeats
    np.testing.assert_array_equal(samples.points[:5], points[pick].astype(np.float32))
    np.testing.assert_array_equal(samples.normals[:5], normals[pick].astype(np.float32))
    np.testing.assert_array_equal(samples.points[5:], np.concatenate([near_a, near_b, uniform]).astype(np.float32))

    assert np.all(samples.sdf[:5] == 0.0)
    assert np.isnan(samples.sdf[5:]).all() and np.isnan(samples.normals[5:]).all()  # unknown off the surface
    np.testing.assert_allclose(np.linalg.norm(samples.normals[:5], axis=1), 1.0, atol=1e-6)


def test_point_cloud_surface_draws_repeat_points_only_when_it_must():
    from inrcore.geometry.sampling import sample_point_cloud

    points, normals = _cloud(10)
    samples = sample_point_cloud(points, normals, SamplingConfig(n_surface=25, n_near=0, n_uniform=0))
    assert samples.points.shape == (25, 3)
    # Every surface row is one of the 10 cloud points, with that point's normal.
    match = np.argmin(np.linalg.norm(samples.points[:, None, :] - points[None].astype(np.float32), axis=2), axis=1)
    np.testing.assert_array_equal(samples.points, points[match].astype(np.float32))
    np.testing.assert_array_equal(samples.normals, normals[match].astype(np.float32))
    assert len(np.unique(match)) <= 10 < 25
    with pytest.raises(ValueError, match="expected points"):
        sample_point_cloud(points, normals[:3], SamplingConfig())


def test_known_distances_none_for_clouds_and_as_is_for_meshes():
    from inrcore.geometry.sampling import known_distances

    assert known_distances(np.full(4, np.nan, dtype=np.float32)) is None
    finite = np.array([0.1, -0.2], dtype=np.float32)
    assert known_distances(finite) is finite
    assert len(known_distances(np.zeros(0, dtype=np.float32))) == 0
    with pytest.raises(ValueError, match="1 of 2 off-surface distances"):
        known_distances(np.array([0.1, np.nan]))
