"""The body of a PLY file: its elements' rows read into columns, ASCII or binary of either byte order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from inrcore.errors import ShapeError


def _unreadable(path, problem: str):
    raise ShapeError(path, f"not a readable mesh: {problem}")


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
