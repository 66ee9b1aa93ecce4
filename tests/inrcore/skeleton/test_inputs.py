"""Tests of inrcore/skeleton/inputs.py: reading shapes for skeletons, winding numbers, refusals naming the file."""

import numpy as np
import pytest
import trimesh

from inrcore.errors import ShapeError
from inrcore.geometry.pointclouds import write_point_cloud_ply
from inrcore.skeleton.analytic import sphere
from inrcore.skeleton.inputs import point_areas, read_skeleton_input, signed_volume, winding_numbers


def test_a_mesh_is_normalised_sampled_and_its_normals_point_out(tmp_path):
    path = tmp_path / "ball.obj"
    sphere(2.0).mesh().apply_translation([5.0, 0.0, 0.0]).export(path)
    shape = read_skeleton_input(path, 3000, 0.9)
    assert shape.kind == "mesh" and shape.points.shape == (3000, 3)
    assert np.abs(shape.points).max() == pytest.approx(0.9, abs=1e-2)  # the longest side spans [-0.9, 0.9]
    assert np.linalg.norm(shape.points, axis=1) == pytest.approx(0.9, abs=1e-2)
    # Outward normals: along the position on a sphere about the origin.
    assert np.einsum("ij,ij->i", shape.points / 0.9, shape.normals).min() > 0.99
    assert shape.normalisation.center == pytest.approx((5.0, 0.0, 0.0), abs=1e-6)


def test_an_inward_wound_mesh_still_gets_outward_normals(tmp_path):
    mesh = sphere(1.0).mesh()
    mesh.invert()
    assert signed_volume(mesh) < 0
    path = tmp_path / "inside-out.ply"
    mesh.export(path)
    shape = read_skeleton_input(path, 500, 0.9)
    assert np.einsum("ij,ij->i", shape.points, shape.normals).min() > 0


def test_winding_numbers_of_a_mesh_and_of_its_points(tmp_path):
    mesh = sphere(1.0).mesh()
    path = tmp_path / "ball.obj"
    mesh.export(path)
    queries = np.array([[0.0, 0.0, 0.0], [0.5, 0.2, 0.0], [0.0, 0.0, 0.97]])
    as_mesh = read_skeleton_input(path, 20000, 0.9)
    assert winding_numbers(as_mesh, queries) == pytest.approx([1.0, 1.0, 0.0], abs=0.02)
    points, normals = trimesh.sample.sample_surface_even(mesh, 4000, seed=1)[0], None
    normals = points / np.linalg.norm(points, axis=1, keepdims=True)
    cloud_path = write_point_cloud_ply(tmp_path / "ball.ply", points, normals)
    as_cloud = read_skeleton_input(cloud_path, 20000, 0.9)
    assert as_cloud.kind == "points"
    assert winding_numbers(as_cloud, queries) == pytest.approx([1.0, 1.0, 0.0], abs=0.1)


def test_point_areas_add_up_to_about_the_sampled_area():
    rng = np.random.default_rng(0)
    points = rng.uniform(0.0, 1.0, (4000, 2))
    areas = point_areas(np.column_stack([points, np.zeros(4000)]))
    assert areas.sum() == pytest.approx(1.0, rel=0.25)


def test_a_flat_point_cloud_is_refused_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-1, 1, (500, 2)), np.zeros(500)])
    path = write_point_cloud_ply(tmp_path / "sheet.ply", points, np.tile([0.0, 0.0, 1.0], (500, 1)))
    with pytest.raises(ShapeError, match=r"sheet\.ply: all points lie on one plane"):
        read_skeleton_input(path, 1000, 0.9)


def test_a_mesh_with_no_interior_is_refused_naming_the_file(tmp_path):
    # An open, bent sheet: it has area (so it is a mesh) but encloses nothing.
    sheet = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0.3], [0, 1, 0.3]], faces=[[0, 1, 2], [0, 2, 3]])
    path = tmp_path / "sheet.obj"
    sheet.export(path)
    with pytest.raises(ShapeError, match=r"sheet\.obj: the mesh encloses no volume"):
        read_skeleton_input(path, 1000, 0.9)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ShapeError, match="nothing.obj"):
        read_skeleton_input(tmp_path / "nothing.obj", 100, 0.9)
