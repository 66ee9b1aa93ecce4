"""Positional encoding layout and the hash encoding against trilinear interpolation (and scipy's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator

from inrcore.nerf.encodings import (
    HashEncoding,
    encoding_frequencies,
    hash_grid_resolutions,
    positional_encoding,
    positional_encoding_width,
    spatial_hash,
    trilinear_interpolation,
)


# ---------------------------------------------------------------- positional encoding


def test_encoding_frequencies_are_powers_of_two():
    assert encoding_frequencies(4).tolist() == [1.0, 2.0, 4.0, 8.0]
    assert encoding_frequencies(10)[-1].item() == 512.0
    assert encoding_frequencies(0).shape == (0,)


def test_positional_encoding_layout():
    x = torch.tensor([[0.5, -1.0]])
    encoded = positional_encoding(x, 2)
    s, c = math.sin, math.cos
    expected = [0.5, -1.0, s(0.5), s(-1.0), c(0.5), c(-1.0), s(1.0), s(-2.0), c(1.0), c(-2.0)]
    assert encoded.shape == (1, 10) == (1, positional_encoding_width(2, 2))
    assert torch.allclose(encoded, torch.tensor([expected]))
    without = positional_encoding(x, 2, include_input=False)
    assert without.shape == (1, positional_encoding_width(2, 2, include_input=False)) == (1, 8)
    assert torch.allclose(without, torch.tensor([expected[2:]]))


def test_positional_encoding_keeps_leading_dims_dtype_and_widths():
    x = torch.rand(4, 5, 3, dtype=torch.float64)
    encoded = positional_encoding(x, 10)
    assert encoded.shape == (4, 5, 63) and encoded.dtype == torch.float64
    assert positional_encoding_width(3, 10) == 63 and positional_encoding_width(3, 4) == 27
    assert torch.equal(encoded[..., :3], x)
    # block of frequency 2^9, cosine: columns 3 + 2 * 3 * 9 + 3 ...
    assert torch.allclose(encoded[..., 3 + 6 * 9 + 3 : 3 + 6 * 9 + 6], torch.cos(512.0 * x))
    assert torch.equal(positional_encoding(x, 0), x)


# ---------------------------------------------------------------- trilinear interpolation


def test_trilinear_interpolation_matches_scipy():
    gen = torch.Generator().manual_seed(0)
    grid = torch.rand(4, 5, 6, 2, generator=gen, dtype=torch.float64)
    x = torch.rand(500, 3, generator=gen, dtype=torch.float64)
    x[:3] = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.5]], dtype=torch.float64)
    axes = [np.linspace(0.0, 1.0, n) for n in grid.shape[:3]]
    reference = RegularGridInterpolator(axes, grid.numpy(), method="linear")(x.numpy())
    assert np.allclose(trilinear_interpolation(grid, x).numpy(), reference, atol=1e-12)


def test_trilinear_interpolation_hand_values():
    # vertex values 1 + 2x + 3y + 4z (with x = i / 2, y = j / 3, z = k / 1) are reproduced exactly
    i, j, k = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), torch.arange(2.0), indexing="ij")
    grid = (1 + 2 * i / 2 + 3 * j / 3 + 4 * k)[..., None]
    x = torch.tensor([[0.5, 0.5, 0.5], [0.25, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert torch.allclose(trilinear_interpolation(grid, x)[:, 0], torch.tensor([5.5, 5.5, 6.0]))
    # a vertex returns its value: grid[1, 2, 0] sits at (1/2, 2/3, 0)
    grid = torch.zeros(3, 4, 2, 1)
    grid[1, 2, 0] = 7.0
    assert trilinear_interpolation(grid, torch.tensor([[0.5, 2 / 3, 0.0]])).item() == pytest.approx(7.0)


def test_trilinear_interpolation_rejects_bad_shapes():
    with pytest.raises(ValueError, match="grid"):
        trilinear_interpolation(torch.zeros(1, 3, 3, 1), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        trilinear_interpolation(torch.zeros(3, 3, 3, 1), torch.zeros(2, 2))


# ---------------------------------------------------------------- hash encoding


def test_resolutions_formula():
    # b = exp((ln 2048 - ln 16) / 15) = 128^(1/15)
    resolutions = HashEncoding().resolutions
    growth = 128.0 ** (1 / 15)
    assert len(resolutions) == 16 and resolutions[0] == 16 and resolutions[-1] == 2048
    assert resolutions[1] == math.floor(16 * growth) == 22
    assert resolutions[7] == math.floor(16 * growth**7) == 153
    assert list(resolutions) == sorted(resolutions)
    # a growth factor of exactly 2 and a single level
    assert hash_grid_resolutions(4, 2, 16) == (2, 4, 8, 16)
    assert hash_grid_resolutions(1, 16, 16) == (16,)


def test_spatial_hash_hand_values():
    table_size = 2**19
    coords = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 5, 7]])
    expected = [
        0,
        1,
        2654435761 % table_size,
        805459861 % table_size,
        (3 ^ (5 * 2654435761) ^ (7 * 805459861)) % table_size,
    ]
    assert spatial_hash(coords, table_size).tolist() == expected
    with pytest.raises(ValueError, match="power of two"):
        spatial_hash(coords, 1000)


def test_table_sizes_dense_and_hashed_levels():
    torch.manual_seed(0)
    settings = dict(n_levels=4, features_per_level=3, log2_hashmap_size=10, base_resolution=4, finest_resolution=32)
    encoding = HashEncoding(**settings)
    assert encoding.resolutions == (4, 8, 16, 32)
    # (N + 1)^3 = 125, 729 fit a table of 1024 rows; 4913 and 35937 do not
    assert encoding.dense_levels == (True, True, False, False)
    assert encoding.table_rows == (125, 729, 1024, 1024)
    assert [tuple(t.shape) for t in encoding.tables] == [(3, 125), (3, 729), (3, 1024), (3, 1024)]
    assert encoding.out_dim == 12
    assert sum(p.numel() for p in encoding.parameters()) == (125 + 729 + 2048) * 3
    for table in encoding.tables:
        assert table.abs().max() <= 1e-4 and table.std() > 1e-5
    torch.manual_seed(0)
    again = HashEncoding(**settings)
    assert all(torch.equal(a, b) for a, b in zip(encoding.tables, again.tables))


def _small_encoding() -> HashEncoding:
    torch.manual_seed(1)
    encoding = HashEncoding(
        n_levels=3, features_per_level=2, log2_hashmap_size=9, base_resolution=3, finest_resolution=12
    )
    with torch.no_grad():  # values large enough to tell apart
        for table in encoding.tables:
            table.uniform_(-1.0, 1.0)
    return encoding


def test_dense_level_equals_trilinear_interpolation_of_its_table():
    encoding = _small_encoding()
    assert encoding.resolutions == (3, 6, 12) and encoding.dense_levels == (True, True, False)
    x = torch.rand(300, 3, generator=torch.Generator().manual_seed(2))
    x[:2] = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    out = encoding(x)
    assert out.shape == (300, 6)
    for level in (0, 1):
        side = encoding.resolutions[level] + 1
        # the tables are [F, rows]; row i + j side + k side^2 -> grid[i, j, k]
        grid = encoding.tables[level].detach().T.reshape(side, side, side, 2).permute(2, 1, 0, 3)
        features = out[:, 2 * level : 2 * level + 2].detach()
        assert torch.allclose(features, trilinear_interpolation(grid, x), atol=1e-6)
        axes = [np.linspace(0.0, 1.0, side)] * 3
        scipy_features = RegularGridInterpolator(axes, grid.double().numpy())(x.double().numpy())
        assert np.allclose(features.numpy(), scipy_features, atol=1e-6)


def test_hashed_level_equals_trilinear_interpolation_of_the_hashed_grid():
    encoding = _small_encoding()
    level, n = 2, encoding.resolutions[2]
    vertices = torch.stack(torch.meshgrid(*[torch.arange(n + 1)] * 3, indexing="ij"), dim=-1)  # [13, 13, 13, 3]
    grid = encoding.tables[level].detach().T[spatial_hash(vertices, 2**9)]  # [13, 13, 13, 2]
    x = torch.rand(300, 3, generator=torch.Generator().manual_seed(3))
    features = encoding(x)[:, 4:6].detach()
    assert torch.allclose(features, trilinear_interpolation(grid, x), atol=1e-6)


def test_hashed_indices_are_in_range_and_are_the_corner_hashes():
    encoding = HashEncoding(n_levels=16, log2_hashmap_size=12)
    x = torch.rand(2000, 3, generator=torch.Generator().manual_seed(4))
    x[0] = 1.0
    for level, (n, dense) in enumerate(zip(encoding.resolutions, encoding.dense_levels)):
        rows = encoding.corner_indices(x, level)
        assert rows.shape == (2000, 8)
        assert rows.min() >= 0 and rows.max() < encoding.table_rows[level]
        if not dense:
            # the point (0.3, 0.6, 0.9)'s cell has lower corner floor(N x); corner 4a + 2b + c = lower + (a, b, c)
            point = torch.tensor([[0.3, 0.6, 0.9]])
            lower = torch.floor(point[0] * n).long()
            corners = torch.stack([lower + torch.tensor([a, b, c]) for a in (0, 1) for b in (0, 1) for c in (0, 1)])
            assert encoding.corner_indices(point, level)[0].tolist() == spatial_hash(corners, 2**12).tolist()
    assert encoding.dense_levels.count(False) > 0


def test_gradients_reach_every_table_and_the_inputs():
    encoding = HashEncoding(n_levels=4, log2_hashmap_size=10, base_resolution=4, finest_resolution=32)
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(5)).requires_grad_()
    encoding(x).square().sum().backward()
    for table in encoding.tables:
        assert table.grad is not None and table.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_table_gradient_by_hand():
    # a point at the centre of dense cell (1, 2, 0) of a resolution-4 grid gives each of the cell's
    # 8 corners weight 1/8
    encoding = HashEncoding(
        n_levels=1, features_per_level=2, log2_hashmap_size=10, base_resolution=4, finest_resolution=4
    )
    x = torch.tensor([[1.5, 2.5, 0.5]]) / 4
    encoding(x)[0, 0].backward()
    grad = encoding.tables[0].grad  # [F, rows]
    corners = [(1 + a) + (2 + b) * 5 + (0 + c) * 25 for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    expected = torch.zeros(2, 125)
    expected[0, corners] = 1 / 8
    assert torch.allclose(grad, expected)


def test_points_outside_the_cube_are_clamped():
    encoding = _small_encoding()
    inside = encoding(torch.tensor([[1.0, 0.0, 0.5]]))
    outside = encoding(torch.tensor([[1.3, -0.2, 0.5]]))
    assert torch.equal(inside, outside)


def test_input_dtypes():
    encoding = _small_encoding()
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(6))
    reference = encoding(x)
    assert reference.dtype == torch.float32
    as_double = encoding(x.double())
    assert as_double.dtype == torch.float64
    assert torch.allclose(as_double, reference.double(), atol=1e-6)
    as_bfloat = encoding(x.bfloat16())
    assert as_bfloat.dtype == torch.float32
    assert torch.allclose(as_bfloat, encoding(x.bfloat16().float()))
    encoding.double()
    assert encoding(x).dtype == torch.float64
    with pytest.raises(ValueError, match="float"):
        encoding(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        encoding(torch.zeros(2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hash_encoding_on_cuda_matches_cpu():
    encoding = _small_encoding()
    x = torch.rand(100, 3, generator=torch.Generator().manual_seed(7))
    reference = encoding(x)
    cuda = encoding.to("cuda")
    out = cuda(x.to("cuda"))
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), reference, atol=1e-6)
    assert positional_encoding(x.to("cuda"), 4).device.type == "cuda"
