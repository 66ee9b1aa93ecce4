import numpy as np
import pytest
from scipy.spatial import Delaunay

from inrcore.skeleton.linking import (
    SkeletonLinks,
    lifted_points,
    regular_triangulation,
    simplex_faces,
    skeleton_simplices,
    tetrahedron_volumes,
)


# A regular tetrahedron's corners (‖x‖² = 3) and its centre.
CORNERS_AND_CENTRE = np.array([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1], [0, 0, 0]])


def as_set(simplices):
    return {tuple(sorted(int(i) for i in row)) for row in simplices}


def sphere_samples(n, radius, centre=(0.0, 0.0, 0.0), seed=0):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return np.asarray(centre) + radius * d / np.linalg.norm(d, axis=1, keepdims=True)


def capsule_samples(n, radius=0.3, half=0.6, seed=0):
    """n samples on the capsule around the segment [-half, half] on the x axis, uniform by area."""
    rng = np.random.default_rng(seed)
    n_side = int(round(n * 2 * half / (2 * half + 2 * radius)))  # areas 4πr·half and 4πr²
    t = rng.uniform(-half, half, n_side)
    angle = rng.uniform(0, 2 * np.pi, n_side)
    side = np.stack([t, radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    caps = sphere_samples(n - n_side, radius, seed=seed + 1)
    caps[:, 0] += np.where(caps[:, 0] > 0, half, -half)
    return np.concatenate([side, caps])


def segment_centres(k, half=0.6):
    return np.stack([np.linspace(-half, half, k), np.zeros(k), np.zeros(k)], axis=1)


def test_lift_by_hand():
    lifted = lifted_points(np.array([[1.0, 2.0, 2.0], [0, 0, 0]]), np.array([4.0, -1.0]))
    assert np.allclose(lifted, [[1, 2, 2, 5], [0, 0, 0, 1]])


def test_simplex_faces_of_one_tetrahedron():
    tet = np.array([[3, 5, 7, 9]])
    assert as_set(simplex_faces(tet, 2)) == {(3, 5), (3, 7), (3, 9), (5, 7), (5, 9), (7, 9)}
    assert as_set(simplex_faces(tet, 3)) == {(3, 5, 7), (3, 5, 9), (3, 7, 9), (5, 7, 9)}


def test_a_light_point_is_hidden_by_heavy_neighbours():
    # The corners' lifts (x, 3 − W) span the hyperplane h = 3 − W; the centre's lift is (0, −w).
    # Equal weights (W = w = 0): the centre (0) lies below (3) and splits the tetrahedron in four,
    # as in the Delaunay triangulation. W = 4, w = 0: −0 > 3 − 4, the centre lies above the lower
    # hull, its power cell is empty and the regular triangulation is the one big tetrahedron.
    delaunay = as_set(Delaunay(CORNERS_AND_CENTRE).simplices)
    assert delaunay == {(0, 1, 2, 4), (0, 1, 3, 4), (0, 2, 3, 4), (1, 2, 3, 4)}
    assert as_set(regular_triangulation(CORNERS_AND_CENTRE, np.zeros(5))) == delaunay
    assert regular_triangulation(CORNERS_AND_CENTRE, np.array([4.0, 4, 4, 4, 0])).tolist() == [[0, 1, 2, 3]]
    # The same through the centre's weight alone: hidden for w < W − 3 = −3.
    assert len(regular_triangulation(CORNERS_AND_CENTRE, np.array([0.0, 0, 0, 0, -2.9]))) == 4
    assert regular_triangulation(CORNERS_AND_CENTRE, np.array([0.0, 0, 0, 0, -3.1])).tolist() == [[0, 1, 2, 3]]


@pytest.mark.parametrize("weight", [0.0, 2.5])
def test_equal_weights_give_the_delaunay_tetrahedra(weight):
    points = np.random.default_rng(7).normal(size=(80, 3))
    tetrahedra = regular_triangulation(points, np.full(80, weight))
    assert as_set(tetrahedra) == as_set(Delaunay(points).simplices)
    assert tetrahedra.dtype == np.int64 and np.all(np.diff(tetrahedra, axis=1) > 0)
    assert np.all(np.abs(tetrahedron_volumes(points, tetrahedra)) > 0)


def test_far_from_the_origin_and_large_scale_give_the_same_triangulation():
    points = np.random.default_rng(8).normal(size=(60, 3))
    weights = np.random.default_rng(9).uniform(0, 0.2, 60)
    reference = regular_triangulation(points, weights)
    moved = regular_triangulation(1000.0 * points + 1e5, 1000.0**2 * weights)
    assert np.array_equal(reference, moved)


def test_cospherical_points_give_no_flat_tetrahedra():
    # The cube's corners are cospherical: Qhull triangulates each face's pyramid around a heavy centre.
    cube = np.array([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)])
    points = np.concatenate([cube, [[0.5, 0.5, 0.5]]])
    tetrahedra = regular_triangulation(points, np.array([0.0] * 8 + [0.5]))
    assert len(tetrahedra) == 12 and np.all(tetrahedra[:, 3] == 8)  # two per face, all through the centre
    assert np.isclose(np.abs(tetrahedron_volumes(points, tetrahedra)).sum(), 1.0)


def test_too_few_or_flat_points_are_refused():
    with pytest.raises(ValueError, match="at least 5"):
        regular_triangulation(CORNERS_AND_CENTRE[:4], np.zeros(4))
    flat = np.random.default_rng(0).normal(size=(20, 3))
    flat[:, 2] = 0.3
    with pytest.raises(ValueError, match="coplanar"):
        regular_triangulation(flat, np.zeros(20))
    with pytest.raises(ValueError, match="coincide"):
        regular_triangulation(np.ones((6, 3)), np.zeros(6))
    with pytest.raises(ValueError, match="weights"):
        regular_triangulation(CORNERS_AND_CENTRE, np.zeros(4))


@pytest.mark.parametrize("k", [3, 5, 9])
def test_capsule_centres_are_linked_in_a_path(k):
    # Balls of radius 0.3 (the capsule's) on its axis, 1.2/(k − 1) ≤ 0.6 apart: consecutive dilated
    # balls (radius 0.33) overlap.
    links = skeleton_simplices(segment_centres(k), np.full(k, 0.3), capsule_samples(400), delta=0.03)
    assert isinstance(links, SkeletonLinks)
    assert links.edges.tolist() == [[i, i + 1] for i in range(k - 1)]
    assert links.faces.shape == (0, 3)  # collinear centres: no triangle
    assert links.isolated.tolist() == []
    assert links.edges.dtype == np.int64 and links.to_dict() == {"n_edges": k - 1, "n_faces": 0, "n_isolated": 0}


def test_two_capsule_balls_too_far_apart_are_not_linked():
    # 1.2 apart with dilated radii 0.33: on the axis midway, the power to either ball is
    # 0.6² − 0.33² = 0.25 but to a side sample 0.3² − 0.03² = 0.089: the samples separate the cells.
    links = skeleton_simplices(segment_centres(2), np.full(2, 0.3), capsule_samples(400), delta=0.03)
    assert links.edges.shape == (0, 2) and links.isolated.tolist() == [0, 1]


def test_a_single_ball_has_no_edges():
    links = skeleton_simplices(np.zeros((1, 3)), np.array([0.3]), sphere_samples(50, 0.3), delta=0.03)
    assert links.edges.shape == (0, 2) and links.faces.shape == (0, 3)
    assert links.isolated.tolist() == [0]


def test_a_far_ball_inside_its_own_surface_is_isolated():
    # The capsule's five balls, and a ball of radius 0.2 at x = 2 inside a sphere of samples of its own.
    centres = np.concatenate([segment_centres(5), [[2.0, 0.0, 0.0]]])
    radii = np.array([0.3] * 5 + [0.2])
    surface = np.concatenate([capsule_samples(400), sphere_samples(100, 0.2, centre=(2.0, 0.0, 0.0), seed=5)])
    links = skeleton_simplices(centres, radii, surface, delta=0.03)
    assert links.edges.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert links.isolated.tolist() == [5]


def test_a_ball_inside_a_bigger_one_is_hidden_and_isolated():
    # Ball 3 (r 0.05) lies 0.1 from ball 1's centre (r 0.3): 0.1² < 0.33² − 0.08², so its power
    # cell is empty and it is in no tetrahedron, hence in no edge.
    centres = np.concatenate([segment_centres(3), [[0.0, 0.1, 0.0]]])
    links = skeleton_simplices(centres, np.array([0.3, 0.3, 0.3, 0.05]), capsule_samples(400), delta=0.03)
    assert links.edges.tolist() == [[0, 1], [1, 2]]
    assert links.isolated.tolist() == [3]


def test_faces_are_made_of_edges_on_a_slab():
    # A 6 × 6 grid of overlapping balls in the mid-plane of a slab: triangles appear.
    rng = np.random.default_rng(0)
    top = np.concatenate([rng.uniform(-0.6, 0.6, (1500, 2)), np.full((1500, 1), 0.1)], axis=1)
    bottom = np.concatenate([rng.uniform(-0.6, 0.6, (1500, 2)), np.full((1500, 1), -0.1)], axis=1)
    grid = np.linspace(-0.5, 0.5, 6)
    centres = np.array([[x, y, 0.0] for x in grid for y in grid])
    links = skeleton_simplices(centres, np.full(36, 0.1), np.concatenate([top, bottom]), delta=0.03)
    assert len(links.faces) > 0 and links.isolated.tolist() == []
    edges = as_set(links.edges)
    assert all({(a, b), (a, c), (b, c)} <= edges for a, b, c in links.faces.tolist())
    assert np.array_equal(links.faces, np.unique(links.faces, axis=0))
    assert np.array_equal(links.edges, np.unique(links.edges, axis=0))


def test_no_centres_give_empty_links():
    links = skeleton_simplices(np.zeros((0, 3)), np.zeros(0), sphere_samples(20, 1.0), delta=0.03)
    assert links.edges.shape == (0, 2) and links.faces.shape == (0, 3) and links.isolated.shape == (0,)
