"""PLY meshes as scanners write them: the header, vertex positions, and faces of every kind.

A PLY file is a text header naming its format (ascii, binary_little_endian or
binary_big_endian) and its elements in file order, each with a row count and properties
(a scalar of one of the eight PLY types, or a list: a count followed by that many values),
then the rows of every element in that order. Faces come in two kinds:

- `face`: one polygon per row (list property `vertex_indices`, or `vertex_index`), turned
  into triangles as fans: (v0, v1, v2), (v0, v2, v3), ...
- `tristrips`: triangle strips (list property `vertex_indices`), as Stanford's `plystrip`
  writes them: usually one long row, strips separated by the restart marker -1. A strip
  a b c d e gives (a, b, c), (c, b, d), (c, d, e): every second triangle swaps its first two
  corners so that all keep the strip's winding; triangles with a repeated corner (the
  stitches between strips) are dropped.

Any other element that lists vertex indices (a scanner's `range_grid`, say) is a kind of face
this reader does not know, and is refused with its name rather than silently left out.
Everything wrong with a file raises `ShapeError` naming the file and the problem.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from inrcore.errors import ShapeError
from inrcore.geometry.plydata import (
    _HEADER_LIMIT,
    FACE_KINDS,
    PLY_FORMATS,
    PLY_TYPES,
    RESTART,
    PlyElement,
    PlyHeader,
    PlyProperty,
    _read_elements,
    _unreadable,
    _within,
)


def read_ply_header(path: str | os.PathLike) -> PlyHeader:
    """Parse the header of a PLY file; raise ShapeError ("not a readable mesh: ...") when it is malformed."""
    with open(path, "rb") as stream:
        head = stream.read(_HEADER_LIMIT)
    return parse_ply_header(head, path)


def parse_ply_header(head: bytes, path: str | os.PathLike = "<ply>") -> PlyHeader:
    """A header from the first bytes of a file (at least up to its `end_header` line)."""
    if not head.startswith(b"ply"):
        _unreadable(path, "not a PLY file (it does not start with 'ply')")
    end = head.find(b"\nend_header") + 1  # the line, not the words in a comment
    if end == 0:
        _unreadable(path, "the PLY header has no end_header line")
    line_end = head.find(b"\n", end)
    data_start = len(head) if line_end < 0 else line_end + 1
    lines = head[:end].decode("latin-1").splitlines()[1:]
    fmt: Optional[str] = None
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) != 3 or words[1] not in PLY_FORMATS:
                _unreadable(path, f"header line {number}: unknown PLY format {' '.join(words[1:])!r} "
                                  f"(expected one of {', '.join(PLY_FORMATS)})")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                _unreadable(path, f"header line {number}: expected 'element NAME COUNT', got {line.strip()!r}")
            if any(name == words[1] for name, _, _ in elements):
                _unreadable(path, f"header line {number}: a second element '{words[1]}'")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                _unreadable(path, f"header line {number}: a property before any element")
            elements[-1][2].append(_parse_property(words, number, elements[-1][0], path))
        else:
            _unreadable(path, f"header line {number}: unknown keyword {words[0]!r}")
    if fmt is None:
        _unreadable(path, "the PLY header has no format line")
    return PlyHeader(fmt, tuple(PlyElement(name, count, tuple(props)) for name, count, props in elements), data_start)


def read_ply_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The vertex positions and the triangles of every face element of a PLY file.

    Returns:
        vertices [V, 3] float64 (the vertex element's x, y, z) and triangles [F, 3] int64:
        `face` polygons as fans, then `tristrips` as strips (see the module docstring). F may
        be 0; indices are not checked against V here.
    Raises:
        ShapeError: a malformed header or truncated data, a vertex element without x, y, z,
            a face element without a vertex index list, or an element of vertex indices of a
            kind other than face and tristrips.
    """
    with open(path, "rb") as stream:
        data = stream.read()
    header = parse_ply_header(data[:_HEADER_LIMIT], path)
    unknown = header.unknown_face_elements()
    if unknown:
        element = unknown[0]
        raise ShapeError(path, f"element '{element.name}' ({element.count} rows of vertex indices) is a kind of face "
                               f"this reader does not know; it reads {' and '.join(FACE_KINDS)} elements")
    wanted = {"vertex"} | {e.name for e in header.elements if e.name in FACE_KINDS}
    for name in wanted - {"vertex"}:
        element = header.element(name)
        if element.count and element.index_list() is None:
            names = ", ".join(p.name for p in element.properties) or "none"
            raise ShapeError(path, f"element '{name}' has no vertex_indices list property (its properties: {names})")
    columns = _read_elements(data, header, wanted, path)
    vertices = _vertex_positions(header, columns.get("vertex", {}), path)
    triangles = [np.zeros((0, 3), dtype=np.int64)]
    for element in header.elements:
        if element.name in FACE_KINDS and element.count:
            indices = element.index_list()
            lengths, flat = columns[element.name][indices.name]
            if element.name == "face":
                triangles.append(triangles_from_polygons(lengths, flat))
            else:
                triangles.append(triangles_from_strips(lengths, _restarts_as_minus_one(flat, indices.dtype)))
    return vertices, np.concatenate(triangles)


def triangles_from_polygons(lengths: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Polygons (row i: `lengths[i]` vertex indices, all rows concatenated in `flat`) -> fan
    triangles [F, 3] int64: a polygon v0 .. v(n-1) gives (v0, vk, vk+1) for k = 1 .. n-2.
    Rows with fewer than 3 indices give none."""
    lengths = np.asarray(lengths, dtype=np.int64)
    flat = np.asarray(flat, dtype=np.int64)
    fans = np.maximum(lengths - 2, 0)  # triangles per polygon
    first = np.repeat(np.cumsum(lengths) - lengths, fans)  # [F] where each triangle's polygon starts
    k = _within(fans) + 1  # [F] 1 .. n-2 within each polygon
    return np.stack([flat[first], flat[first + k], flat[first + k + 1]], axis=1).reshape(-1, 3)


def triangles_from_strips(lengths: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Triangle strips (row i: `lengths[i]` indices, rows concatenated in `flat`; -1 inside a row
    restarts the strip) -> triangles [F, 3] int64 in strip order.

    Triangle j of a strip s0 s1 s2 ... is (s_j, s_j+1, s_j+2) for even j and (s_j+1, s_j, s_j+2)
    for odd j, so every triangle keeps the first one's winding; triangles with a repeated
    corner (degenerate stitches) are dropped. Each row starts a new strip.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    flat = np.asarray(flat, dtype=np.int64)
    if len(flat) < 3:
        return np.zeros((0, 3), dtype=np.int64)
    positions = np.arange(len(flat))
    restart = flat == RESTART
    row_start = np.zeros(len(flat), dtype=bool)
    row_start[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
    # start[i]: where the strip holding position i begins (a -1 at p: p + 1, after it).
    start = np.maximum.accumulate(np.where(restart | row_start, positions + restart, 0))
    j = positions[:-2]
    corners = np.stack([flat[j], flat[j + 1], flat[j + 2]], axis=1)  # [N-2, 3] candidate triangles
    odd = (j - start[j]) % 2 == 1
    corners[odd] = corners[odd][:, [1, 0, 2]]
    in_one_strip = start[j + 2] <= j  # no restart or new row at j, j+1 or j+2 after the strip began
    degenerate = ((corners[:, 0] == corners[:, 1]) | (corners[:, 1] == corners[:, 2])
                  | (corners[:, 0] == corners[:, 2]))
    return corners[in_one_strip & ~degenerate]


def _restarts_as_minus_one(values: np.ndarray, dtype: str) -> np.ndarray:
    """Strip indices [N] as int64, an unsigned type's largest value (-1 written unsigned) read as -1."""
    values = np.asarray(values).astype(np.int64)
    if dtype[0] == "u":
        values[values == np.iinfo(dtype).max] = RESTART
    return values


def _parse_property(words: list[str], number: int, element: str, path) -> PlyProperty:
    if len(words) == 3 and words[1] in PLY_TYPES:
        return PlyProperty(words[2], PLY_TYPES[words[1]])
    if len(words) == 5 and words[1] == "list" and words[2] in PLY_TYPES and words[3] in PLY_TYPES:
        if PLY_TYPES[words[2]][0] == "f":
            _unreadable(path, f"header line {number}: list property '{words[4]}' of element '{element}' "
                              f"has a floating-point length type '{words[2]}'")
        return PlyProperty(words[4], PLY_TYPES[words[3]], PLY_TYPES[words[2]])
    _unreadable(path, f"header line {number}: cannot read property {' '.join(words[1:])!r} of element '{element}' "
                      f"(types: {', '.join(sorted(set(PLY_TYPES)))})")
    raise AssertionError  # unreachable: _unreadable raises


def _vertex_positions(header: PlyHeader, columns: dict, path) -> np.ndarray:
    """The vertex element's x, y, z columns as [V, 3] float64."""
    element = header.element("vertex")
    if element is None:
        _unreadable(path, "the PLY header declares no vertex element")
    missing = [axis for axis in "xyz" if axis not in columns]
    if missing:
        _unreadable(path, f"element 'vertex' has no {', '.join(missing)} propert{'y' if len(missing) == 1 else 'ies'}")
    return np.stack([np.asarray(columns[axis], dtype=np.float64) for axis in "xyz"], axis=1).reshape(-1, 3)


