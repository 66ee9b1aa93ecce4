"""Mesh loading (with its errors), hashing and normalisation, against hand-worked values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from inrcore.errors import ConfigError, ShapeError
from inrcore.geometry.meshes import Normalisation, file_sha256, load_mesh, normalisation_for, normalise_mesh


DATASETS = Path(__file__).resolve().parents[3] / "datasets" / "meshes"

TETRA_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"


def _shape_error(path: Path) -> ShapeError:
    with pytest.raises(ShapeError) as caught:
        load_mesh(path)
    error = caught.value
    assert str(path) in str(error) and error.path == str(path)
    assert isinstance(error, ValueError)
    return error


# ---------------------------------------------------------------- load_mesh: bad input


def test_missing_file(tmp_path):
    assert _shape_error(tmp_path / "nope.obj").problem == "file does not exist"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.obj"
    path.write_bytes(b"")
    assert _shape_error(path).problem == "file is empty"


def test_unsupported_extension(tmp_path):
    path = tmp_path / "points.xyz"
    path.write_text("0 0 0\n1 0 0\n")
    problem = _shape_error(path).problem
    assert problem.startswith("unsupported format '.xyz'; expected one of")
    for suffix in (".obj", ".ply", ".off", ".stl", ".glb"):
        assert suffix in problem


def test_garbage_text_named_obj(tmp_path):
    path = tmp_path / "garbage.obj"
    path.write_text("this is not a mesh\nat all; 1 2 three\n")
    assert _shape_error(path).problem.startswith("not a readable mesh: ")


@pytest.mark.parametrize("suffix", [".ply", ".off", ".glb"])
def test_garbage_binary_formats(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"junk \x00\x01\x02 not a mesh\n")
    assert _shape_error(path).problem.startswith("not a readable mesh: ")


def test_obj_with_only_vertices(tmp_path):
    path = tmp_path / "cloud.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    assert _shape_error(path).problem == "mesh has no faces"


def test_point_cloud_ply(tmp_path):
    path = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(0).random((10, 3))).export(path)
    assert _shape_error(path).problem == "mesh has no faces"


def test_obj_with_nan_vertex(tmp_path):
    path = tmp_path / "nan.obj"
    path.write_text(TETRA_OBJ.replace("v 1 0 0", "v nan 0 0").replace("v 0 0 1", "v 0 0 inf"))
    assert _shape_error(path).problem == "2 vertices have NaN or infinite coordinates"


def test_face_index_out_of_range(tmp_path):
    path = tmp_path / "bad_index.ply"
    bad = trimesh.Trimesh(
        vertices=[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 2], [0, 1, 5]], process=False, validate=False
    )
    bad.export(path)
    assert _shape_error(path).problem == "face indices out of range: 1 faces refer to vertices outside 0..2"


def test_face_index_out_of_range_obj_is_unreadable(tmp_path):
    # trimesh's OBJ parser itself fails on the index; the error still names the file.
    path = tmp_path / "bad_index.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    assert _shape_error(path).problem.startswith("not a readable mesh: ")


def test_all_vertices_equal(tmp_path):
    path = tmp_path / "point.obj"
    path.write_text("v 1 2 3\nv 1 2 3\nv 1 2 3\nf 1 2 3\n")
    assert _shape_error(path).problem == "mesh has zero extent"


def test_collinear_triangles(tmp_path):
    path = tmp_path / "line.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 3 2 1\n")
    assert _shape_error(path).problem == "mesh has no surface area"


def test_directory_is_not_a_mesh(tmp_path):
    folder = tmp_path / "mesh.obj"
    folder.mkdir()
    assert _shape_error(folder).problem == "is a directory, not a file"


# ---------------------------------------------------------------- load_mesh: good input


@pytest.mark.parametrize(
    "name, n_vertices, n_faces",
    [("bunny.obj", 2514, 5000), ("spot.obj", 2930, 5856), ("fandisk.obj", 2502, 5000)],
)
def test_demo_meshes_load(name, n_vertices, n_faces):
    mesh = load_mesh(DATASETS / name)
    assert mesh.vertices.shape == (n_vertices, 3) and mesh.vertices.dtype == np.float64
    assert mesh.faces.shape == (n_faces, 3)
    assert np.isfinite(mesh.vertices).all()


def test_obj_keeps_vertices_as_written(tmp_path):
    # trimesh's default drops unreferenced vertices (here the last one); load_mesh keeps the
    # file's vertex list and order.
    path = tmp_path / "tetra.obj"
    path.write_text(TETRA_OBJ.replace("f 1 3 2", "v 9 9 9\nf 1 3 2"))
    mesh = load_mesh(path)
    assert mesh.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [9, 9, 9]]
    assert mesh.faces.tolist() == [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]


def test_obj_texture_seams_do_not_split_vertices(tmp_path):
    # Vertex 1 takes a different texture coordinate in each face: trimesh's default would make
    # three copies of it; load_mesh keeps one vertex per "v" line.
    path = tmp_path / "seams.obj"
    path.write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 0 1\n"
        "f 1/1 3/2 2/3\nf 1/2 2/1 4/3\nf 1/3 4/2 3/1\nf 2/1 3/2 4/3\n"
    )
    mesh = load_mesh(path)
    assert mesh.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert mesh.faces.tolist() == [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]


@pytest.mark.parametrize("suffix", [".ply", ".stl", ".off"])
def test_formats_written_by_trimesh(tmp_path, suffix):
    box = trimesh.creation.box(extents=(2.0, 4.0, 6.0))
    path = tmp_path / f"box{suffix}"
    box.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12  # STL stores 36 separate corners; the others 8 vertices
    np.testing.assert_allclose(mesh.bounds, [[-1, -2, -3], [1, 2, 3]], atol=1e-6)
    assert mesh.area == pytest.approx(2 * (2 * 4 + 4 * 6 + 2 * 6), rel=1e-6)  # 88


def test_glb_scene_is_concatenated_with_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a")
    scene.add_geometry(
        trimesh.creation.box(extents=(1, 1, 1)),
        node_name="b",
        transform=trimesh.transformations.translation_matrix([3.0, 0, 0]),
    )
    path = tmp_path / "two.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 24
    np.testing.assert_allclose(mesh.bounds, [[-0.5, -0.5, -0.5], [3.5, 0.5, 0.5]], atol=1e-6)


# ---------------------------------------------------------------- file_sha256


def test_file_sha256_known_vector(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")  # FIPS 180-2 test vector
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_file_sha256_streams_large_files(tmp_path):
    data = bytes(range(256)) * 9000  # 2.3 MB: three 1 MiB chunks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- normalisation


def _box_2_6() -> trimesh.Trimesh:
    # Spans [2, 6] x [0, 2] x [1, 2]: centre (4, 1, 1.5), longest side 4.
    return trimesh.creation.box(bounds=[[2.0, 0.0, 1.0], [6.0, 2.0, 2.0]])


def test_normalisation_of_a_known_box():
    norm = normalisation_for(_box_2_6(), extent=0.9)
    assert norm.center == (4.0, 1.0, 1.5)
    assert norm.scale == pytest.approx(0.45, rel=1e-15)  # 2 * 0.9 / 4
    corners = np.array([[6.0, 2.0, 2.0], [2.0, 0.0, 1.0], [4.0, 1.0, 1.5]])
    expected = np.array([[0.9, 0.45, 0.225], [-0.9, -0.45, -0.225], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(norm.apply(corners), expected, atol=1e-15)


def test_apply_invert_round_trip():
    norm = Normalisation(center=(4.0, 1.0, 1.5), scale=0.45)
    points = np.random.default_rng(1).normal(size=(100, 3)) * 10
    np.testing.assert_allclose(norm.invert(norm.apply(points)), points, rtol=0, atol=1e-12)
    as_float32 = norm.apply(points.astype(np.float32))
    assert as_float32.dtype == np.float32


def test_normalisation_dict_round_trip():
    norm = Normalisation(center=(4.0, 1.0, 1.5), scale=0.45)
    data = norm.to_dict()
    assert data == {"center": [4.0, 1.0, 1.5], "scale": 0.45}
    assert Normalisation.from_dict(json.loads(json.dumps(data))) == norm


def test_normalisation_rejects_bad_values():
    with pytest.raises(ValueError):
        Normalisation(center=(0.0, 0.0, 0.0), scale=0.0)
    with pytest.raises(ValueError):
        Normalisation(center=(0.0, 0.0), scale=1.0)
    with pytest.raises(ConfigError, match="normalisation"):
        Normalisation.from_dict({"center": [0, 0, 0]})
    with pytest.raises(ConfigError, match="scale"):
        Normalisation.from_dict({"center": [0, 0, 0], "scale": -1})


def test_normalise_mesh_returns_a_new_mesh():
    box = _box_2_6()
    before = box.vertices.copy()
    moved, norm = normalise_mesh(box, extent=0.9)
    np.testing.assert_array_equal(box.vertices, before)
    np.testing.assert_allclose(moved.bounds, [[-0.9, -0.45, -0.225], [0.9, 0.45, 0.225]], atol=1e-15)
    np.testing.assert_array_equal(moved.faces, box.faces)
    assert norm == normalisation_for(box, 0.9)
