import numpy as np
from skimage.measure import marching_cubes

from inrcore.geometry.grids import grid_axis, grid_spacing
from inrcore.geometry.marching import marching_cubes_blocks, weld_vertices
from inrcore.geometry.settings import GridConfig


def sphere_grid(resolution, radius=0.5):
    axis = grid_axis(GridConfig(resolution=resolution))
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return (np.sqrt(x ** 2 + y ** 2 + z ** 2) - radius).astype(np.float32)


def test_blockwise_mesh_equals_one_pass_marching_cubes():
    values = sphere_grid(41)
    spacing = grid_spacing(GridConfig(resolution=41))
    mesh = marching_cubes_blocks(lambda b: values[b], values.shape, 8, spacing, (-1.0, -1.0, -1.0))
    v, f, _, _ = marching_cubes(values, 0.0, spacing=(spacing,) * 3, gradient_direction="descent")
    reference = weld_vertices(v - 1.0, f, spacing * 1e-4)
    assert len(mesh.vertices) == len(reference.vertices) and len(mesh.faces) == len(reference.faces)
    a = np.unique(np.round(mesh.vertices, 6), axis=0)
    b = np.unique(np.round(reference.vertices, 6), axis=0)
    assert np.abs(a - b).max() < 1e-5


def test_sphere_mesh_is_watertight_outward_and_the_right_size():
    values = sphere_grid(49)
    spacing = grid_spacing(GridConfig(resolution=49))
    mesh = marching_cubes_blocks(lambda b: values[b], values.shape, 16, spacing, (-1.0, -1.0, -1.0))
    assert mesh.is_watertight
    assert mesh.volume > 0  # outward normals
    assert abs(mesh.volume - 4.0 / 3.0 * np.pi * 0.125) / (4.0 / 3.0 * np.pi * 0.125) < 0.02
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - 0.5).max() < spacing * 0.1


def test_field_without_a_zero_crossing_gives_an_empty_mesh():
    values = np.ones((9, 9, 9), np.float32)
    mesh = marching_cubes_blocks(lambda b: values[b], values.shape, 4, 0.25, (-1.0, -1.0, -1.0))
    assert len(mesh.faces) == 0 and len(mesh.vertices) == 0


def test_weld_merges_duplicates_and_drops_collapsed_faces():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1.0 + 1e-9, 0, 0], [0, 0, 1e-9]], float)
    faces = np.array([[0, 1, 2], [3, 2, 0], [0, 4, 1]])
    mesh = weld_vertices(vertices, faces, tolerance=1e-6)
    assert len(mesh.vertices) == 3
    assert len(mesh.faces) == 2  # the third collapsed onto an edge
