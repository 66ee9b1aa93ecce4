"""PLY meshes as scanners write them: triangle strips, polygons, every encoding, and clear errors.

The strip file below is two unit squares side by side in the z = 0 plane,

    2 ---- 3 ---- 5        written as one `tristrips` row: 2 0 3 1 -1 1 4 3 5
    |      |      |        strip 2 0 3 1 -> (2, 0, 3), (3, 0, 1)   (the second swapped)
    0 ---- 1 ---- 4        strip 1 4 3 5 -> (1, 4, 3), (3, 4, 5)

so by hand: four triangles, all with normal +z, area 2.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from inrcore.errors import ShapeError
from inrcore.geometry.meshes import load_mesh
from inrcore.geometry.plyfiles import (
    read_ply_header,
    read_ply_mesh,
    triangles_from_polygons,
    triangles_from_strips,
)
from inrcore.sdf.fitshape import input_kind_of


VERTICES = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (2, 0, 0), (2, 1, 0)]
STRIP = [2, 0, 3, 1, -1, 1, 4, 3, 5]
STRIP_TRIANGLES = [[2, 0, 3], [3, 0, 1], [1, 4, 3], [3, 4, 5]]


def header(fmt: str, strip_count: int = 1, index_type: str = "int") -> bytes:
    return (f"ply\nformat {fmt} 1.0\ncomment made by hand\nobj_info num_cols 3\nelement vertex {len(VERTICES)}\n"
            "property float x\nproperty float y\nproperty float z\nproperty uchar confidence\n"
            f"element tristrips {strip_count}\nproperty list int {index_type} vertex_indices\nend_header\n").encode()


def strip_ply(fmt: str) -> bytes:
    """The two squares as a tristrips PLY in `fmt` (ascii, binary_little_endian or binary_big_endian);
    each vertex also carries a uchar `confidence`, as Stanford's scans do."""
    if fmt == "ascii":
        rows = "".join(f"{x} {y} {z} 255\n" for x, y, z in VERTICES)
        return header(fmt) + (rows + f"{len(STRIP)} " + " ".join(map(str, STRIP)) + "\n").encode()
    e = "<" if fmt == "binary_little_endian" else ">"
    body = b"".join(struct.pack(f"{e}fffB", *v, 255) for v in VERTICES)
    body += struct.pack(f"{e}i{len(STRIP)}i", len(STRIP), *STRIP)
    return header(fmt) + body


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_tristrips_become_the_triangles_worked_by_hand(tmp_path, fmt):
    path = tmp_path / f"strips-{fmt}.ply"
    path.write_bytes(strip_ply(fmt))
    vertices, triangles = read_ply_mesh(path)
    assert vertices.tolist() == [list(map(float, v)) for v in VERTICES]
    assert triangles.tolist() == STRIP_TRIANGLES
    mesh = load_mesh(path)
    assert mesh.area == pytest.approx(2.0)
    np.testing.assert_allclose(mesh.face_normals, [[0, 0, 1]] * 4)
    assert input_kind_of(path) == "mesh"


def test_strip_conversion_alternates_winding_restarts_and_drops_stitches():
    # a b c d e -> (a b c), (c b d), (c d e); two rows are two strips
    assert triangles_from_strips([5, 3], [10, 11, 12, 13, 14, 20, 21, 22]).tolist() == [
        [10, 11, 12], [12, 11, 13], [12, 13, 14], [20, 21, 22]]
    # the repeated 2 stitches two strips: (2 1 2) and (2 2 3) are degenerate; parity goes on
    assert triangles_from_strips([6], [0, 1, 2, 2, 3, 4]).tolist() == [[0, 1, 2], [3, 2, 4]]
    # a restart right at the start, two in a row, and a strip too short for a triangle
    assert triangles_from_strips([9], [-1, 0, 1, 2, -1, -1, 3, 4, -1]).tolist() == [[0, 1, 2]]
    assert triangles_from_strips([2], [0, 1]).shape == (0, 3)


def test_unsigned_strip_indices_restart_at_their_largest_value(tmp_path):
    path = tmp_path / "unsigned.ply"
    strip = [2 ** 32 - 1 if i == -1 else i for i in STRIP]
    body = b"".join(struct.pack("<fffB", *v, 0) for v in VERTICES) + struct.pack(f"<i{len(strip)}I", len(strip), *strip)
    path.write_bytes(header("binary_little_endian", index_type="uint") + body)
    assert read_ply_mesh(path)[1].tolist() == STRIP_TRIANGLES


def test_polygons_become_fans():
    # a quad 0 1 3 2, a pentagon 1 4 5 3 0 and an edge (two indices: no triangle)
    assert triangles_from_polygons([4, 5, 2], [0, 1, 3, 2, 1, 4, 5, 3, 0, 7, 8]).tolist() == [
        [0, 1, 3], [0, 3, 2], [1, 4, 5], [1, 5, 3], [1, 3, 0]]


MIXED_FACES = [[0, 1, 3, 2], [1, 4, 3], [1, 4, 5, 3]]
MIXED_TRIANGLES = [[0, 1, 3], [0, 3, 2], [1, 4, 3], [1, 4, 5], [1, 5, 3]]


def face_ply(fmt: str) -> bytes:
    """Quads and a triangle in one `face` element (rows of different lengths), with a per-face uchar after the list."""
    head = (f"ply\nformat {fmt} 1.0\nelement vertex {len(VERTICES)}\nproperty double x\nproperty double y\n"
            f"property double z\nelement face {len(MIXED_FACES)}\nproperty list uchar uint vertex_index\n"
            "property uchar flags\nend_header\n").encode()
    if fmt == "ascii":
        rows = "".join(f"{x} {y} {z}\n" for x, y, z in VERTICES)
        rows += "".join(f"{len(f)} {' '.join(map(str, f))} 7\n" for f in MIXED_FACES)
        return head + rows.encode()
    e = "<" if fmt == "binary_little_endian" else ">"
    body = b"".join(struct.pack(f"{e}ddd", *v) for v in VERTICES)
    body += b"".join(struct.pack(f"{e}B{len(f)}IB", len(f), *f, 7) for f in MIXED_FACES)
    return head + body


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_quads_and_triangles_of_one_face_element(tmp_path, fmt):
    path = tmp_path / f"faces-{fmt}.ply"
    path.write_bytes(face_ply(fmt))
    assert read_ply_mesh(path)[1].tolist() == MIXED_TRIANGLES
    assert load_mesh(path).area == pytest.approx(2.5)  # two unit squares plus the half square (1 4 3)


def test_faces_and_strips_together(tmp_path):
    """A file with both kinds: the face element's triangles, then the strips'."""
    path = tmp_path / "both.ply"
    head = (f"ply\nformat ascii 1.0\nelement vertex {len(VERTICES)}\nproperty float x\nproperty float y\n"
            "property float z\nelement face 1\nproperty list uchar int vertex_indices\nelement tristrips 1\n"
            "property list int int vertex_indices\nend_header\n")
    rows = "".join(f"{x} {y} {z}\n" for x, y, z in VERTICES) + "3 0 1 3\n4 1 4 3 5\n"
    path.write_text(head + rows)
    assert read_ply_mesh(path)[1].tolist() == [[0, 1, 3], [1, 4, 3], [3, 4, 5]]


def test_a_face_element_of_an_unknown_kind_is_named(tmp_path):
    path = tmp_path / "range.ply"
    head = (f"ply\nformat ascii 1.0\nobj_info num_cols 2\nobj_info num_rows 2\nelement vertex 4\nproperty float x\n"
            "property float y\nproperty float z\nelement range_grid 4\nproperty list uchar int vertex_indices\n"
            "end_header\n")
    path.write_text(head + "0 0 0\n1 0 0\n0 1 0\n1 1 0\n1 0\n1 1\n1 2\n1 3\n")
    assert input_kind_of(path) == "mesh"  # so that loading it says what is wrong
    with pytest.raises(ShapeError) as caught:
        load_mesh(path)
    assert str(caught.value) == (f"{path}: element 'range_grid' (4 rows of vertex indices) is a kind of face this "
                                 "reader does not know; it reads face and tristrips elements")


def test_a_face_element_without_vertex_indices_is_named(tmp_path):
    path = tmp_path / "corners.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                    "element face 1\nproperty list uchar int corners\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(ShapeError, match=r"corners.ply: element 'face' has no vertex_indices list property "
                                         r"\(its properties: corners\)"):
        load_mesh(path)


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian"])
def test_a_truncated_file_says_where_it_ends(tmp_path, fmt):
    path = tmp_path / "cut.ply"
    path.write_bytes(strip_ply(fmt)[:-12])
    with pytest.raises(ShapeError, match=r"cut.ply: not a readable mesh: the file ends inside element 'tristrips' "
                                         r"\(1 rows declared\)"):
        load_mesh(path)


@pytest.mark.parametrize("text, problem", [
    ("ply\nformat binary_middle_endian 1.0\nend_header\n", "header line 2: unknown PLY format 'binary_middle_endian 1.0'"),
    ("ply\nformat ascii 1.0\nelement vertex 1\nproperty half x\nend_header\n",
     "header line 4: cannot read property 'half x' of element 'vertex'"),
    ("ply\nformat ascii 1.0\ncomment no end_header here\nelement vertex 3\nproperty float x\n",
     "the PLY header has no end_header line"),
    ("ply\nformat ascii 1.0\nelement face 0\nelement face 0\nend_header\n", "header line 4: a second element 'face'"),
    ("ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n3 0 1 2\n",
     "the PLY header declares no vertex element"),
    ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n",
     "element 'vertex' has no z property"),
])
def test_malformed_headers_name_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.ply"
    path.write_text(text)
    with pytest.raises(ShapeError) as caught:
        read_ply_mesh(path)
    assert caught.value.path == str(path)
    assert caught.value.problem.startswith("not a readable mesh: " + problem)


def test_header_declares_faces_only_for_elements_with_rows(tmp_path):
    path = tmp_path / "cloud.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
                    "element tristrips 0\nproperty list int int vertex_indices\nend_header\n0 0 0\n")
    head = read_ply_header(path)
    assert [(e.name, e.count) for e in head.elements] == [("vertex", 1), ("tristrips", 0)]
    assert not head.declares_faces() and input_kind_of(path) == "points"
    with pytest.raises(ShapeError, match="cloud.ply: mesh has no faces"):
        load_mesh(path)
