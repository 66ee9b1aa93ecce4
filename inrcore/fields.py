"""Evaluating a field on a dense grid, one block at a time.

The grid has `resolution` points per axis spanning [-bound, bound] (both ends included),
indexed [i, j, k] -> (x_i, y_j, z_k). A block is a tuple of three index slices, so any
chunked array library can hand blocks to `evaluate_grid_block` and store the result.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np
import torch

from .config import GridConfig
from .networks import FieldSpec, Params, evaluate_field

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


@torch.no_grad()
def evaluate_points(
    spec: FieldSpec, params: Params, points: np.ndarray, device: torch.device | str = "cpu", batch_points: int = 65536
) -> np.ndarray:
    """Field values at points: [N, 3] -> [N] float32, in batches of `batch_points`.

    Any field spec (`evaluate_field`): a composite field that needs gradients (an IDF's base
    normals) switches them on internally; the values come back detached.
    """
    device = torch.device(device)
    params = {k: v.to(device) for k, v in params.items()}
    out = np.empty(len(points), dtype=np.float32)
    for start in range(0, len(points), batch_points):
        chunk = torch.as_tensor(points[start:start + batch_points], device=device)
        out[start:start + len(chunk)] = evaluate_field(spec, params, chunk)[:, 0].float().cpu().numpy()
    return out


def evaluate_grid_block(
    spec: FieldSpec, params: Params, grid: GridConfig, block: Block, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Field values on one block of the grid: [a, b, c] float32."""
    shape = tuple(s.stop - s.start for s in block)
    values = evaluate_points(spec, params, block_points(grid, block), device, grid.batch_points)
    return values.reshape(shape)
