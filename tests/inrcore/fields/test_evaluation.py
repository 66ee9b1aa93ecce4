import numpy as np
import torch

from inrcore.fields.evaluation import evaluate_grid_block, evaluate_points
from inrcore.fields.networks import init_siren_params, siren_spec
from inrcore.geometry.grids import block_points, grid_axis, grid_blocks, grid_spacing
from inrcore.geometry.settings import GridConfig


def test_axis_and_spacing():
    grid = GridConfig(resolution=5, bound=1.0)
    assert np.allclose(grid_axis(grid), [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert grid_spacing(grid) == 0.5


def test_blocks_cover_the_array_once():
    blocks = list(grid_blocks((5, 4, 3), 2))
    assert len(blocks) == 3 * 2 * 2
    seen = np.zeros((5, 4, 3), int)
    for b in blocks:
        seen[b] += 1
    assert (seen == 1).all()
    assert blocks[-1] == (slice(4, 5), slice(2, 4), slice(2, 3))


def test_block_points_are_in_c_order_of_indices():
    grid = GridConfig(resolution=5)
    pts = block_points(grid, (slice(1, 3), slice(0, 1), slice(3, 5)))
    assert pts.shape == (4, 3)
    assert np.allclose(pts, [[-0.5, -1, 0.5], [-0.5, -1, 1.0], [0.0, -1, 0.5], [0.0, -1, 1.0]])


def test_blockwise_evaluation_equals_one_shot():
    grid = GridConfig(resolution=11, chunk=4, batch_points=50)
    spec = siren_spec(width=16, layers=1)
    params = init_siren_params(spec, torch.Generator().manual_seed(0))
    full = evaluate_points(spec, params, block_points(grid, (slice(0, 11),) * 3)).reshape(11, 11, 11)
    assembled = np.full((11, 11, 11), np.nan, np.float32)
    for b in grid_blocks(assembled.shape, grid.chunk):
        assembled[b] = evaluate_grid_block(spec, params, grid, b)
    assert np.allclose(assembled, full, atol=1e-6)
