"""Evaluating a field on a dense grid, one block at a time.

The grid has `resolution` points per axis spanning [-bound, bound] (both ends included),
indexed [i, j, k] -> (x_i, y_j, z_k). A block is a tuple of three index slices, so any
chunked array library can hand blocks to `evaluate_grid_block` and store the result.
"""

from __future__ import annotations

import numpy as np
import torch

from inrcore.fields.networks import FieldSpec, Params, evaluate_field
from inrcore.geometry.grids import Block, block_points
from inrcore.geometry.settings import GridConfig


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
