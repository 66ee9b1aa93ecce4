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
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import ShapeError

PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
             "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
             "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
PLY_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
FACE_KINDS = ("face", "tristrips")
INDEX_LISTS = ("vertex_indices", "vertex_index")
RESTART = -1
_HEADER_LIMIT = 1 << 20  # no real header is anywhere near a megabyte


@dataclass(frozen=True)
class PlyProperty:
    """One property of an element: a scalar of numpy type `dtype` ("f4", "u1", ...), or a list
    when `count_dtype` (the type of its length) is set."""

    name: str
    dtype: str
    count_dtype: Optional[str] = None

    @property
    def is_list(self) -> bool:
        return self.count_dtype is not None


@dataclass(frozen=True)
class PlyElement:
    """An element of the header: its name, row count and properties in row order."""

    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    def index_list(self) -> Optional[PlyProperty]:
        """The list property holding vertex indices (`vertex_indices` or `vertex_index`), or None."""
        for prop in self.properties:
            if prop.is_list and prop.name in INDEX_LISTS:
                return prop
        return None


@dataclass(frozen=True)
class PlyHeader:
    """A parsed header: the format, the elements in file order, and where their rows start."""

    format: str
    elements: tuple[PlyElement, ...]
    data_start: int

    def element(self, name: str) -> Optional[PlyElement]:
        return next((e for e in self.elements if e.name == name), None)

    def unknown_face_elements(self) -> list[PlyElement]:
        """Elements with rows that list vertex indices but are neither `face` nor `tristrips`."""
        return [e for e in self.elements
                if e.name not in FACE_KINDS and e.name != "vertex" and e.count > 0 and e.index_list() is not None]

    def declares_faces(self) -> bool:
        """Whether any element with rows holds faces, of a kind this reader knows or not."""
        known = any(e.name in FACE_KINDS and e.count > 0 for e in self.elements)
        return known or bool(self.unknown_face_elements())


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


def _unreadable(path, problem: str):
    raise ShapeError(path, f"not a readable mesh: {problem}")


def _vertex_positions(header: PlyHeader, columns: dict, path) -> np.ndarray:
    """The vertex element's x, y, z columns as [V, 3] float64."""
    element = header.element("vertex")
    if element is None:
        _unreadable(path, "the PLY header declares no vertex element")
    missing = [axis for axis in "xyz" if axis not in columns]
    if missing:
        _unreadable(path, f"element 'vertex' has no {', '.join(missing)} propert{'y' if len(missing) == 1 else 'ies'}")
    return np.stack([np.asarray(columns[axis], dtype=np.float64) for axis in "xyz"], axis=1).reshape(-1, 3)


def _read_elements(data: bytes, header: PlyHeader, wanted: set[str], path) -> dict[str, dict]:
    """Every element's rows, in file order (rows of elements not `wanted` are skipped over).

    Returns {element name: {property name: values}}: a scalar property as an array [count],
    a list property as (lengths [count] int64, concatenated values [sum of lengths]).
    """
    if header.format == "ascii":
        return _read_ascii(data[header.data_start:], header, wanted, path)
    return _read_binary(data, header, wanted, PLY_FORMATS[header.format], path)


def _read_ascii(body: bytes, header: PlyHeader, wanted: set[str], path) -> dict[str, dict]:
    tokens = body.decode("latin-1").split()
    at = 0
    out: dict[str, dict] = {}
    for element in header.elements:
        if _nothing_wanted_after(header, element, wanted):
            break
        layout, at = _ascii_row_layout(tokens, at, element, path)
        if element.name in wanted:
            out[element.name] = _ascii_columns(tokens, layout, element, path)
    return out


def _nothing_wanted_after(header: PlyHeader, element: PlyElement, wanted: set[str]) -> bool:
    """Whether no wanted element comes at or after `element` (so reading can stop there)."""
    index = header.elements.index(element)
    return not any(e.name in wanted for e in header.elements[index:])


def _ascii_row_layout(tokens: list[str], at: int, element: PlyElement, path) -> tuple[dict, int]:
    """Where each property's tokens are: {name: token positions [count]} for scalars and
    {name: (lengths [count], first value position [count])} for lists; and the position after
    the element. Rows whose lists all have the first row's lengths are laid out without a loop."""
    props = element.properties
    if element.count == 0:
        return {p.name: ((np.zeros(0, np.int64), np.zeros(0, np.int64)) if p.is_list else np.zeros(0, np.int64))
                for p in props}, at
    if not any(p.is_list for p in props):
        width = len(props)
        end = at + width * element.count
        _check_tokens(tokens, end, element, path)
        rows = at + width * np.arange(element.count)
        return {p.name: rows + i for i, p in enumerate(props)}, end
    first = _ascii_row_widths(tokens, at, element, path)
    width = sum(1 + n if p.is_list else 1 for p, n in zip(props, first))
    end = at + width * element.count
    if end <= len(tokens):
        rows = at + width * np.arange(element.count)
        layout, position = {}, 0
        uniform = True
        for p, n in zip(props, first):
            if p.is_list:
                counts = [tokens[r] for r in rows + position]
                if any(c != tokens[at + position] for c in counts):
                    uniform = False
                    break
                layout[p.name] = (np.full(element.count, n, np.int64), rows + position + 1)
                position += 1 + n
            else:
                layout[p.name] = rows + position
                position += 1
        if uniform:
            return layout, end
    return _ascii_rows_one_by_one(tokens, at, element, path)


def _ascii_row_widths(tokens: list[str], at: int, element: PlyElement, path) -> list[int]:
    """The list lengths of the row starting at token `at` (0 for scalar properties)."""
    widths = []
    for p in element.properties:
        _check_tokens(tokens, at + 1, element, path)
        if p.is_list:
            n = _ascii_count(tokens[at], element, p, path)
            widths.append(n)
            at += 1 + n
        else:
            widths.append(0)
            at += 1
    return widths


def _ascii_rows_one_by_one(tokens: list[str], at: int, element: PlyElement, path) -> tuple[dict, int]:
    positions = {p.name: [] for p in element.properties}
    lengths = {p.name: [] for p in element.properties if p.is_list}
    for _ in range(element.count):
        for p in element.properties:
            _check_tokens(tokens, at + 1, element, path)
            if p.is_list:
                n = _ascii_count(tokens[at], element, p, path)
                positions[p.name].append(at + 1)
                lengths[p.name].append(n)
                at += 1 + n
            else:
                positions[p.name].append(at)
                at += 1
    _check_tokens(tokens, at, element, path)
    return _layout_of(element, positions, lengths), at


def _ascii_count(token: str, element: PlyElement, prop: PlyProperty, path) -> int:
    try:
        n = int(token)
    except ValueError:
        n = -1
    if n < 0:
        _unreadable(path, f"element '{element.name}': list '{prop.name}' has length {token!r}")
    return n


def _check_tokens(tokens: list[str], needed: int, element: PlyElement, path) -> None:
    if needed > len(tokens):
        _unreadable(path, f"the file ends inside element '{element.name}' ({element.count} rows declared)")


def _ascii_columns(tokens: list[str], layout: dict, element: PlyElement, path) -> dict:
    columns = {}
    for p in element.properties:
        kind = np.int64 if p.dtype[0] in "iu" else np.float64
        if p.is_list:
            lengths, starts = layout[p.name]
            picks = np.repeat(starts, lengths) + _within(lengths)
            columns[p.name] = (lengths, _numbers([tokens[i] for i in picks], kind, element, p, path))
        else:
            columns[p.name] = _numbers([tokens[i] for i in layout[p.name]], kind, element, p, path)
    return columns


def _numbers(words: list[str], kind, element: PlyElement, prop: PlyProperty, path) -> np.ndarray:
    try:
        return np.array(words, dtype=np.float64).astype(kind) if kind is np.int64 else np.array(words, dtype=kind)
    except ValueError as exc:
        _unreadable(path, f"element '{element.name}', property '{prop.name}': {exc}")


def _within(lengths: np.ndarray) -> np.ndarray:
    """0 .. n-1 for each row of length n, concatenated: [sum of lengths]."""
    total = int(lengths.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _read_binary(data: bytes, header: PlyHeader, wanted: set[str], endian: str, path) -> dict[str, dict]:
    buffer = np.frombuffer(data, dtype=np.uint8)
    at = header.data_start
    out: dict[str, dict] = {}
    for element in header.elements:
        if _nothing_wanted_after(header, element, wanted):
            break
        uniform = _uniform_binary_rows(data, at, element, endian, path)
        if uniform is not None:
            columns, at = uniform
        else:
            layout, at = _binary_rows_one_by_one(data, at, element, endian, path)
            columns = _binary_columns(buffer, layout, element, endian) if element.name in wanted else {}
        if element.name in wanted:
            out[element.name] = columns
    return out


def _uniform_binary_rows(data: bytes, at: int, element: PlyElement, endian: str, path) -> Optional[tuple[dict, int]]:
    """The columns of an element whose rows all have its first row's list lengths (every element
    without lists, all-triangle faces, a single strip), read as one structured array, and the
    byte after it; None when list lengths vary from row to row."""
    props = element.properties
    if element.count and any(p.is_list for p in props):
        lengths, _ = _binary_row(data, at, element, endian, path)
    else:
        lengths = [0] * len(props)
    fields = []
    for i, (p, n) in enumerate(zip(props, lengths)):
        if p.is_list:
            fields += [(f"count{i}", endian + p.count_dtype), (f"values{i}", endian + p.dtype, (n,))]
        else:
            fields.append((f"value{i}", endian + p.dtype))
    row = np.dtype(fields)
    end = at + row.itemsize * element.count
    if end > len(data):
        return None  # truncated, or rows of other lengths: read row by row, which says which
    rows = np.frombuffer(data, dtype=row, count=element.count, offset=at)
    columns = {}
    for i, (p, n) in enumerate(zip(props, lengths)):
        if p.is_list:
            if (rows[f"count{i}"] != n).any():
                return None
            columns[p.name] = (np.full(element.count, n, np.int64), _native(rows[f"values{i}"].reshape(-1)))
        else:
            columns[p.name] = _native(rows[f"value{i}"])
    return columns, end


def _native(values: np.ndarray) -> np.ndarray:
    """A copy of `values` in this machine's byte order."""
    return values.astype(values.dtype.newbyteorder("="))


def _binary_row(data: bytes, at: int, element: PlyElement, endian: str, path) -> tuple[list[int], int]:
    """The list lengths (0 for scalars) of the row at byte `at`, and the row's size in bytes."""
    lengths, start = [], at
    for p in element.properties:
        size = np.dtype(p.dtype).itemsize
        if p.is_list:
            n = _binary_count(data, at, element, p, endian, path)
            lengths.append(n)
            at += np.dtype(p.count_dtype).itemsize + n * size
        else:
            lengths.append(0)
            at += size
    _check_bytes(data, at, element, path)
    return lengths, at - start


def _binary_rows_one_by_one(data: bytes, at: int, element: PlyElement, endian: str, path) -> tuple[dict, int]:
    positions = {p.name: [] for p in element.properties}
    lengths = {p.name: [] for p in element.properties if p.is_list}
    sizes = {p.name: np.dtype(p.dtype).itemsize for p in element.properties}
    for _ in range(element.count):
        for p in element.properties:
            if p.is_list:
                n = _binary_count(data, at, element, p, endian, path)
                at += np.dtype(p.count_dtype).itemsize
                positions[p.name].append(at)
                lengths[p.name].append(n)
                at += n * sizes[p.name]
            else:
                positions[p.name].append(at)
                at += sizes[p.name]
    _check_bytes(data, at, element, path)
    return _layout_of(element, positions, lengths), at


def _layout_of(element: PlyElement, positions: dict, lengths: dict) -> dict:
    """Each property's row positions as arrays: starts [N] for a scalar, (lengths [N], starts [N])
    for a list, from the per-row `positions` and `lengths` collected while scanning."""
    layout = {}
    for p in element.properties:
        starts = np.asarray(positions[p.name], dtype=np.int64)
        layout[p.name] = (np.asarray(lengths[p.name], dtype=np.int64), starts) if p.is_list else starts
    return layout


def _binary_count(data: bytes, at: int, element: PlyElement, prop: PlyProperty, endian: str, path) -> int:
    count_dtype = np.dtype(endian + prop.count_dtype)
    _check_bytes(data, at + count_dtype.itemsize, element, path)
    n = int(np.frombuffer(data, dtype=count_dtype, count=1, offset=at)[0])
    if n < 0:
        _unreadable(path, f"element '{element.name}': list '{prop.name}' has length {n}")
    return n


def _check_bytes(data: bytes, needed: int, element: PlyElement, path) -> None:
    if needed > len(data):
        _unreadable(path, f"the file ends inside element '{element.name}' ({element.count} rows declared)")


def _binary_columns(buffer: np.ndarray, layout: dict, element: PlyElement, endian: str) -> dict:
    columns = {}
    for p in element.properties:
        dtype = np.dtype(endian + p.dtype)
        if p.is_list:
            lengths, starts = layout[p.name]
            firsts = np.repeat(starts, lengths) + _within(lengths) * dtype.itemsize
            columns[p.name] = (lengths, _gather(buffer, firsts, dtype))
        else:
            columns[p.name] = _gather(buffer, layout[p.name], dtype)
    return columns


def _gather(buffer: np.ndarray, offsets: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values of `dtype` at byte `offsets` [N] of `buffer` -> [N] in native byte order."""
    picked = buffer[offsets[:, None] + np.arange(dtype.itemsize)] if len(offsets) else np.zeros((0, dtype.itemsize),
                                                                                                 np.uint8)
    return np.ascontiguousarray(picked).view(dtype).reshape(-1).astype(dtype.newbyteorder("="))
