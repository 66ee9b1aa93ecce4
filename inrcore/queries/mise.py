"""Multiresolution IsoSurface Extraction (MISE, Mescheder et al. 2019) for any field.

The final lattice has R = start * 2^levels cells per axis over [-bound, bound]^3, so R + 1 points
per axis at x_i = linspace(-bound, bound, R + 1)[i] (the points of `dense_mesh` at resolution
R + 1). Level 0 evaluates the (start + 1)^3 points of the coarse lattice. At each level a cell is
*active* when its eight corner values are not all on one side of `level` (inside is value < level,
the signed-distance convention); the active cells and their 26 neighbours (so that a surface
leaving a cell through a face or an edge is followed into the next cell) are split into eight
children, whose new corners are evaluated. Every point is evaluated at most once, so MISE never
evaluates more than the (R + 1)^3 points of the dense lattice. (The authors' code instead splits a
cell when any evaluated points on its closed extent, its corners and the finer points a split
neighbour put on its faces, disagree; splitting every neighbour of an active cell is the more
cautious rule.)

The evaluated values stay sparse (sorted lattice keys and their values). Marching cubes then
runs block by block over the final lattice (`inrcore.geometry.marching.marching_cubes_blocks`):
a block's values are built coarse to fine, each level the trilinear upsampling of the one before
with the evaluated points written over it, so a point never evaluated takes the value interpolated
from the finest cell around it whose corners were. (The authors fill such a point with the mean of
its already filled neighbours along -x, -y and -z.) A fine cell with all eight corners evaluated
gives the triangles dense marching cubes gives. A cell never refined interpolates corners of one
sign and gives none, unless a refined neighbour evaluated points on their common face of the other
sign: there its triangles are placed by the interpolation. The lattice is padded by one layer of
outside values, so a surface cut by the box is closed on the box's faces.

What MISE cannot see: a part of the surface that passes between the corners of the coarse cells
without changing the sign of any of them (a piece thinner than the coarse cell 2 * bound / start,
or a small closed component inside one cell) is never refined and is missing from the mesh,
unless it lies next to a cell that is active. It is a heuristic, not a certificate (compare
`inrcore.queries.rangemesh`, which proves its skipped boxes empty).
"""

from __future__ import annotations

import itertools
import time
from typing import Callable, Optional

import numpy as np
import torch
import trimesh

from inrcore.fields.networks import FieldSpec, Params, evaluate_field
from inrcore.geometry.marching import marching_cubes_blocks


Evaluate = Callable[[torch.Tensor], torch.Tensor]  # points [N, 3] -> values [N]
Progress = Callable[[int, int], None]  # (done, in all)

CORNERS = np.array(list(itertools.product((0, 1), repeat=3)), dtype=np.int64)  # [8, 3]
NEIGHBOURHOOD = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int64)  # [27, 3]
PARENT_POINTS = np.array(list(itertools.product((0, 1, 2), repeat=3)), dtype=np.int64)  # [27, 3]
CELLS_PER_BATCH = 131072  # cells whose neighbours or children are handled at once (memory bound)


def lattice_keys(indices: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per lattice index [..., 3] of an n^3 lattice: (i * n + j) * n + k."""
    indices = indices.astype(np.int64, copy=False)
    return (indices[..., 0] * n + indices[..., 1]) * n + indices[..., 2]


def distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of keys [...] sorted: [M] (by a sort, faster here than np.unique's hashing)."""
    keys = np.sort(keys.reshape(-1))
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def lattice_indices(keys: np.ndarray, n: int) -> np.ndarray:
    """The lattice indices [M, 3] of keys [M] (inverse of `lattice_keys`)."""
    return np.stack([keys // (n * n), (keys // n) % n, keys % n], axis=1)


class EvaluatedPoints:
    """The lattice points evaluated so far: sorted int64 keys [E] and their float32 values [E]."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0, dtype=np.float32)

    def missing(self, keys: np.ndarray) -> np.ndarray:
        """The distinct keys among `keys` not evaluated yet, sorted."""
        keys = distinct(keys)
        if len(self.keys) == 0:
            return keys
        position = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return keys[self.keys[position] != keys]

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Insert sorted distinct new keys [M] with their values [M]."""
        position = np.searchsorted(self.keys, keys)
        self.keys = np.insert(self.keys, position, keys)
        self.values = np.insert(self.values, position, values.astype(np.float32, copy=False))

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Values at keys [...] that have all been evaluated: float32 [...]."""
        position = np.searchsorted(self.keys, keys.reshape(-1))
        return self.values[position].reshape(keys.shape)


def _evaluate_keys(evaluate: Evaluate, keys: np.ndarray, axis: np.ndarray, n: int, device: torch.device,
                   batch: int) -> np.ndarray:
    """Values [M] float32 of `evaluate` at the lattice points `keys` [M] (coordinates axis[i], float32)."""
    out = np.empty(len(keys), dtype=np.float32)
    for first in range(0, len(keys), batch):
        part = keys[first:first + batch]
        points = axis[lattice_indices(part, n)].astype(np.float32)
        with torch.no_grad():
            values = evaluate(torch.from_numpy(points).to(device))
        values = torch.as_tensor(values).detach().to("cpu", torch.float32).reshape(-1)
        if values.shape[0] != len(part):
            raise ValueError(f"mise_mesh: evaluate gave {values.shape[0]} values for {len(part)} points "
                             "(it must map points [N, 3] to values [N])")
        out[first:first + len(part)] = values.numpy()
    return out


def _straddles(corner_values: np.ndarray, level: float) -> np.ndarray:
    """Whether each cell's corner values [M, 8] lie on both sides of `level` (inside: value < level): bool [M]."""
    inside = corner_values < level
    return inside.any(axis=1) & ~inside.all(axis=1)


def dilate_cells(cells: np.ndarray, per_axis: int) -> np.ndarray:
    """Cells [M, 3] and their 26 neighbours inside the per_axis^3 grid of cells, each once: int64 [K, 3] (C order)."""
    if len(cells) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    parts = []
    for first in range(0, len(cells), CELLS_PER_BATCH):
        around = (cells[first:first + CELLS_PER_BATCH, None, :] + NEIGHBOURHOOD).reshape(-1, 3)
        around = around[((around >= 0) & (around < per_axis)).all(axis=1)]
        parts.append(distinct(lattice_keys(around, per_axis)))
    return lattice_indices(distinct(np.concatenate(parts)), per_axis)


def _refine(parents: np.ndarray, stride: int, evaluate: Evaluate, evaluated: EvaluatedPoints, axis: np.ndarray,
            n: int, level: float, device: torch.device, batch: int) -> tuple[np.ndarray, int]:
    """Split the cells `parents` [P, 3] of the level above (cells of 2 * stride fine steps) into their
    eight children, evaluate the children's corners not evaluated yet, and return the active
    children [A, 3] (in units of `stride`) with the number of points evaluated."""
    active, count = [], 0
    for first in range(0, len(parents), CELLS_PER_BATCH):
        part = parents[first:first + CELLS_PER_BATCH]
        keys = lattice_keys((2 * part[:, None, :] + PARENT_POINTS) * stride, n)  # [p, 27]
        new = evaluated.missing(keys)
        if len(new):
            evaluated.add(new, _evaluate_keys(evaluate, new, axis, n, device, batch))
            count += len(new)
        values = evaluated.lookup(keys).reshape(-1, 3, 3, 3)
        for child in CORNERS:
            a, b, c = child
            corners = values[:, a:a + 2, b:b + 2, c:c + 2].reshape(-1, 8)
            chosen = _straddles(corners, level)
            active.append(2 * part[chosen] + child)
    cells = np.concatenate(active) if active else np.zeros((0, 3), dtype=np.int64)
    return cells, count


def _upsample(grid: np.ndarray) -> np.ndarray:
    """Trilinear upsampling by two: [a, b, c] -> [2a - 1, 2b - 1, 2c - 1], midpoints averaged."""
    for dim in range(3):
        grid = np.moveaxis(grid, dim, 0)
        out = np.empty((2 * grid.shape[0] - 1,) + grid.shape[1:], dtype=np.float32)
        out[0::2] = grid
        out[1::2] = (grid[:-1] + grid[1:]) / 2
        grid = np.moveaxis(out, 0, dim)
    return grid


def _trailing_level(indices: np.ndarray, levels: int) -> np.ndarray:
    """The coarsest level whose lattice holds each fine index [M, 3]: levels - (trailing zero bits of the
    three indices, at most levels): int8 [M]."""
    common = np.bitwise_or.reduce(indices, axis=1)
    zeros = np.zeros(len(indices), dtype=np.int64)
    for bit in range(levels):
        zeros += ((common & ((1 << (bit + 1)) - 1)) == 0) | (common == 0)
    return (levels - np.minimum(zeros, levels)).astype(np.int8)


class _BlockFiller:
    """Values of blocks of the padded final lattice for marching cubes, from the sparse evaluated points.

    A block's values interpolate coarse cells that reach past the block, so its fill reads the evaluated
    points as far as one coarse cell (2^levels fine cells) beyond its faces: every block then sees the
    same values on the points it shares with its neighbours (those of one fill of the whole lattice)."""

    def __init__(self, coarse: np.ndarray, evaluated: EvaluatedPoints, n: int, levels: int, chunk: int,
                 level: float, pad: int) -> None:
        self.coarse, self.levels, self.chunk, self.level, self.pad, self.n = coarse, levels, chunk, level, pad, n
        self.outside = np.float32(level + 1e6 * max(1.0, abs(level)))
        self.indices, self.values = lattice_indices(evaluated.keys, n).astype(np.int32), evaluated.values
        self.point_level = _trailing_level(self.indices, levels)
        self.reach = 2 ** levels  # a block's fill reads points up to one coarse cell beyond its faces
        self.tile = min(chunk, max(self.reach, 16))  # the points are sorted by tiles of tile^3 fine points
        self.tiles = -(-n // self.tile)  # per axis
        keys = lattice_keys(self.indices // self.tile, self.tiles)
        self.order = np.argsort(keys, kind="stable")
        self.tile_keys = keys[self.order]

    def _rows_near(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Rows of the evaluated points in the tiles meeting the fine box [low, high] (closed, per axis)."""
        first, last = low // self.tile, np.minimum(high // self.tile, self.tiles - 1)
        pairs = np.stack(np.meshgrid(np.arange(first[0], last[0] + 1), np.arange(first[1], last[1] + 1),
                                     indexing="ij"), axis=-1).reshape(-1, 2)
        lowest = lattice_keys(np.column_stack([pairs, np.full(len(pairs), first[2])]), self.tiles)
        highest = lattice_keys(np.column_stack([pairs, np.full(len(pairs), last[2])]), self.tiles)
        begin, end = np.searchsorted(self.tile_keys, lowest), np.searchsorted(self.tile_keys, highest, "right")
        return np.concatenate([self.order[a:b] for a, b in zip(begin, end)])

    def __call__(self, block) -> np.ndarray:
        lo = np.array([s.start for s in block])
        hi = np.array([s.stop for s in block])
        out = np.full(tuple(hi - lo), self.outside, dtype=np.float32)
        first, stop = np.maximum(lo - self.pad, 0), np.minimum(hi - self.pad, self.n)  # fine range [first, stop)
        if (stop <= first).any():
            return out
        target = tuple(slice(int(a + self.pad - l), int(b + self.pad - l)) for a, b, l in zip(first, stop, lo))
        out[target] = self._fill(first, stop)
        return out

    def _fill(self, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """Values on the fine points [first, stop) per axis: the coarse cells around them upsampled level by
        level, each level's evaluated points written over the upsampling (coarser points stay exact)."""
        reach = self.reach
        low, high = first // reach, -(-(stop - 1) // reach)  # coarse points around the block
        grid = self.coarse[tuple(slice(int(a), int(b) + 1) for a, b in zip(low, high))]
        rows = self._rows_near(low * reach, high * reach)
        indices = self.indices[rows]
        inside = ((indices >= low * reach) & (indices <= high * reach)).all(axis=1)
        rows, indices = rows[inside], indices[inside]
        levels_here = self.point_level[rows]
        if not (levels_here > 0).any() and not (grid.min() < self.level <= grid.max()):
            return np.full(tuple(stop - first), grid.min(), dtype=np.float32)  # one side throughout: no triangles
        order = np.argsort(levels_here, kind="stable")
        bounds = np.searchsorted(levels_here[order], np.arange(self.levels + 2))
        for depth in range(1, self.levels + 1):
            grid = _upsample(grid)  # fine points [low * reach, high * reach] every 2^(levels - depth)
            part = order[bounds[depth]:bounds[depth + 1]]
            spots = (indices[part] - low * reach) // 2 ** (self.levels - depth)
            grid[spots[:, 0], spots[:, 1], spots[:, 2]] = self.values[rows[part]]
        offset = first - low * reach
        return grid[tuple(slice(int(a), int(a + b - c)) for a, b, c in zip(offset, stop, first))]


def mise_mesh(evaluate: Evaluate, start: int = 32, levels: int = 2, bound: float = 1.0, level: float = 0.0,
              batch: int = 65536, on_level: Optional[Progress] = None, device: torch.device | str = "cpu",
              chunk: int = 64, pad: bool = True, on_block: Optional[Progress] = None) -> tuple[trimesh.Trimesh, dict]:
    """The surface value == `level` of a field by MISE (see the module docstring).

    Args:
        evaluate: points [N, 3] float32 on `device` -> values [N] (any device; inside: value < level).
            An occupancy network gives -logits with level = -logit(threshold).
        start: cells per axis of the coarse lattice; levels: subdivisions after it (R = start * 2^levels).
        bound: the lattice spans [-bound, bound]^3.
        batch: points per call of `evaluate`.
        on_level: called as (levels done, levels in all) after each level; on_block: as (blocks done,
            blocks in all) during marching cubes.
        chunk: lattice points per block edge of marching cubes.
        pad: one layer of outside values around the lattice, so a surface cut by the box is closed.
    Returns:
        the mesh (world coordinates, normals towards increasing values) and stats: "evaluations" (points
        evaluated), "dense_evaluations" ((R + 1)^3), "resolution" (R, cells per axis), "lattice_points"
        (R + 1), "start", "levels" (per level, coarsest first: "resolution" (cells per axis),
        "evaluated", "active_cells", "refined_cells"), "seconds" (and "seconds_refine",
        "seconds_mesh"), "vertices", "faces".
    """
    if start < 1 or levels < 0:
        raise ValueError(f"mise_mesh: start must be at least 1 and levels at least 0, got {start} and {levels}")
    if bound <= 0 or batch < 1:
        raise ValueError(f"mise_mesh: bound and batch must be positive, got {bound} and {batch}")
    began = time.perf_counter()
    device = torch.device(device)
    report = on_level or (lambda done, total: None)
    resolution = start * 2 ** levels
    n = resolution + 1
    axis = np.linspace(-bound, bound, n)  # float64, cast to float32 per point as the dense grid does
    evaluated = EvaluatedPoints()
    stride = 2 ** levels
    coarse_keys = lattice_keys(np.stack(np.meshgrid(*[np.arange(start + 1) * stride] * 3, indexing="ij"), -1), n)
    evaluated.add(coarse_keys.reshape(-1), _evaluate_keys(evaluate, coarse_keys.reshape(-1), axis, n, device, batch))
    coarse = evaluated.lookup(coarse_keys)  # [start + 1]^3 (the keys are in C order: already sorted)
    corners = np.stack([coarse[a:a + start, b:b + start, c:c + start] for a, b, c in CORNERS], -1).reshape(-1, 8)
    active = lattice_indices(np.flatnonzero(_straddles(corners, level)), start)
    counts = [{"resolution": start, "evaluated": int((start + 1) ** 3), "active_cells": int(len(active))}]
    for depth in range(1, levels + 1):
        refined = dilate_cells(active, start * 2 ** (depth - 1))
        counts[-1]["refined_cells"] = int(len(refined))
        report(depth, levels + 1)
        active, count = _refine(refined, 2 ** (levels - depth), evaluate, evaluated, axis, n, level, device, batch)
        counts.append({"resolution": start * 2 ** depth, "evaluated": int(count), "active_cells": int(len(active))})
    counts[-1]["refined_cells"] = 0
    report(levels + 1, levels + 1)
    refined_at = time.perf_counter()
    margin = 1 if pad else 0
    filler = _BlockFiller(coarse, evaluated, n, levels, chunk, level, margin)
    spacing = 2.0 * bound / resolution
    mesh = marching_cubes_blocks(filler, (n + 2 * margin,) * 3, chunk, spacing, (-bound - margin * spacing,) * 3,
                                 level, on_block)
    end = time.perf_counter()
    return mesh, {"evaluations": int(len(evaluated.keys)), "dense_evaluations": int(n ** 3), "resolution": resolution,
                  "lattice_points": n, "start": start, "levels": counts, "seconds": end - began,
                  "seconds_refine": refined_at - began, "seconds_mesh": end - refined_at,
                  "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces))}


def field_evaluator(spec: FieldSpec, params: Params, device: torch.device | str = "cpu") -> Evaluate:
    """A network-as-data field (plain or composite) as `mise_mesh`'s evaluate: points [N, 3] -> values [N]
    on `device`, without gradients (a composite field switches them on inside if it needs them)."""
    device = torch.device(device)
    weights = {k: v.detach().to(device) for k, v in params.items()}

    def evaluate(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return evaluate_field(spec, weights, points.to(device))[..., 0]

    return evaluate


def mise_field_mesh(spec: FieldSpec, params: Params, start: int = 32, levels: int = 2, bound: float = 1.0,
                    device: torch.device | str = "cpu", batch: int = 65536, level: float = 0.0,
                    on_level: Optional[Progress] = None, on_block: Optional[Progress] = None,
                    chunk: int = 64) -> tuple[trimesh.Trimesh, dict]:
    """MISE on a network-as-data field: the stats of `mise_mesh` with the keys of `dense_mesh` and
    `range_mesh` ("method": "mise", "point_evaluations" = "evaluations", "box_evaluations": 0).

    The final lattice is `dense_mesh`'s at resolution start * 2^levels + 1 points per axis."""
    mesh, stats = mise_mesh(field_evaluator(spec, params, device), start, levels, bound, level, batch, on_level,
                            device, chunk, True, on_block)
    return mesh, {"method": "mise", **stats, "point_evaluations": stats["evaluations"], "box_evaluations": 0}
