"""Dense grids of points over [-bound, bound]^3 and their chunk-aligned blocks.

The grid has `resolution` points per axis spanning [-bound, bound] (both ends included),
indexed [i, j, k] -> (x_i, y_j, z_k). A block is a tuple of three index slices, so any
chunked array library can hand blocks to an evaluator and store the result.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from inrcore.geometry.settings import GridConfig


Block = tuple[slice, slice, slice]


def grid_axis(grid: GridConfig) -> np.ndarray:
    """Coordinates along one axis: [resolution] float64 from -bound to bound."""
    return np.linspace(-grid.bound, grid.bound, grid.resolution)


def grid_spacing(grid: GridConfig) -> float:
    """Distance between neighbouring grid points."""
    return 2.0 * grid.bound / (grid.resolution - 1)


def grid_blocks(shape: tuple[int, int, int], chunk: int) -> Iterator[Block]:
    """All chunk-aligned blocks covering an array of `shape`, in C order."""
    ranges = [range(0, n, chunk) for n in shape]
    for start in itertools.product(*ranges):
        yield tuple(slice(s, min(s + chunk, n)) for s, n in zip(start, shape))


def block_points(grid: GridConfig, block: Block) -> np.ndarray:
    """Coordinates of a block's grid points: [a*b*c, 3] float32 in C order of (i, j, k)."""
    axis = grid_axis(grid)
    xs, ys, zs = (axis[s] for s in block)
    mesh = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), axis=-1)
    return mesh.reshape(-1, 3).astype(np.float32)
