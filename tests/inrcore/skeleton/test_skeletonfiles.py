"""Skeleton files (PLY, .ma) read back exactly, and the union-of-balls mesh against closed forms."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import trimesh

from inrcore.geometry.plyfiles import read_ply_header, read_ply_mesh
from inrcore.skeleton.skeletonfiles import balls_mesh, read_ma, read_skeleton_ply, write_ma, write_skeleton_ply


# values that float32 holds exactly, so the PLY round trip is exact too
POINTS = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, -0.25]])
RADII = np.array([0.5, 0.25, 0.125])
EDGES = np.array([[0, 1], [1, 2]])
FACES = np.array([[0, 1, 2]])


def _assert_same_skeleton(read, points=POINTS, radii=RADII, edges=EDGES, faces=FACES):
    got_points, got_radii, got_edges, got_faces = read
    np.testing.assert_array_equal(got_points, points)
    np.testing.assert_array_equal(got_radii, radii)
    np.testing.assert_array_equal(got_edges, edges)
    np.testing.assert_array_equal(got_faces, faces)
    assert got_points.shape == (len(points), 3) and got_edges.dtype == np.int64 and got_faces.shape[1:] == (3,)


def test_ply_round_trip(tmp_path):
    path = write_skeleton_ply(tmp_path / "skeleton.ply", POINTS, RADII, EDGES, FACES)
    _assert_same_skeleton(read_skeleton_ply(path))
    header = read_ply_header(path)
    assert header.format == "binary_little_endian"
    assert [(e.name, e.count) for e in header.elements] == [("vertex", 3), ("edge", 2), ("face", 1)]
    assert [p.name for p in header.element("vertex").properties] == ["x", "y", "z", "radius"]
    assert [p.name for p in header.element("edge").properties] == ["vertex1", "vertex2"]
    assert os.path.getsize(path) == header.data_start + 3 * 16 + 2 * 8 + 1 * 13
    assert [p.name for p in tmp_path.iterdir()] == ["skeleton.ply"]  # no temporary left


def test_ply_is_a_mesh_to_mesh_readers(tmp_path):
    path = write_skeleton_ply(tmp_path / "skeleton.ply", POINTS, RADII, EDGES, FACES)
    vertices, triangles = read_ply_mesh(path)
    np.testing.assert_array_equal(vertices, POINTS)
    np.testing.assert_array_equal(triangles, FACES)
    loaded = trimesh.load(path, process=False)
    np.testing.assert_array_equal(loaded.vertices, POINTS)
    np.testing.assert_array_equal(loaded.faces, FACES)


def test_empty_skeleton_round_trips(tmp_path):
    empty = (np.zeros((0, 3)), np.zeros(0), np.zeros((0, 2), dtype=int), np.zeros((0, 3), dtype=int))
    _assert_same_skeleton(read_skeleton_ply(write_skeleton_ply(tmp_path / "e.ply", *empty)), *empty)
    _assert_same_skeleton(read_ma(write_ma(tmp_path / "e.ma", *empty)), *empty)


def test_ma_round_trip_and_text(tmp_path):
    points = POINTS + 0.1  # not exact in binary: repr still reads back exactly
    path = write_ma(tmp_path / "skeleton.ma", points, RADII, EDGES, FACES)
    _assert_same_skeleton(read_ma(path), points=points)
    assert path.read_text().splitlines() == [
        "3 2 1",
        "v 0.1 0.1 0.1 0.5",
        "v 1.1 0.1 0.1 0.25",
        "v 0.1 0.6 -0.15 0.125",
        "e 0 1",
        "e 1 2",
        "f 0 1 2",
    ]


def test_ma_reader_refuses_wrong_counts(tmp_path):
    path = tmp_path / "bad.ma"
    path.write_text("2 0 0\nv 0 0 0 1\n")
    with pytest.raises(ValueError, match="announces"):
        read_ma(path)


def test_writers_check_indices(tmp_path):
    with pytest.raises(ValueError, match="edges"):
        write_ma(tmp_path / "x.ma", POINTS, RADII, [[0, 3]], FACES)
    with pytest.raises(ValueError, match="radii"):
        write_skeleton_ply(tmp_path / "x.ply", POINTS, RADII[:2], EDGES, FACES)


def test_one_ball_mesh_has_the_ball_volume():
    mesh = balls_mesh([[0.2, -0.1, 0.3]], [0.5])
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4.0 / 3.0 * math.pi * 0.5**3, rel=0.02)
    assert mesh.centroid == pytest.approx([0.2, -0.1, 0.3], abs=1e-3)  # in the points' coordinates
    radius = np.linalg.norm(mesh.vertices - [0.2, -0.1, 0.3], axis=1)
    assert np.abs(radius - 0.5).max() < 0.01


def test_two_overlapping_balls_give_their_union():
    big, small, apart = 0.5, 0.4, 0.6
    mesh = balls_mesh([[0.0, 0.0, 0.0], [apart, 0.0, 0.0]], [big, small], resolution=128)
    assert mesh.is_watertight
    assert len(mesh.split(only_watertight=False)) == 1
    # the lens where two spheres overlap, then inclusion-exclusion
    lens = (math.pi * (big + small - apart) ** 2
            * (apart**2 + 2 * apart * small - 3 * small**2 + 2 * apart * big + 6 * small * big - 3 * big**2)
            / (12 * apart))
    union = 4.0 / 3.0 * math.pi * (big**3 + small**3) - lens
    assert mesh.volume == pytest.approx(union, rel=0.03)


def test_no_balls_give_an_empty_mesh():
    assert len(balls_mesh(np.zeros((0, 3)), np.zeros(0)).faces) == 0
    assert len(balls_mesh([[0.0, 0.0, 0.0]], [0.0]).faces) == 0
