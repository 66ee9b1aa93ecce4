"""Input encodings for coordinate networks: NeRF's positional encoding and a multiresolution hash grid.

Positional encoding (Mildenhall et al. 2020, as the NeRF reference code): frequencies
f_k = 2^k for k < F, no factor pi, and the layout
[x, sin(f_0 x), cos(f_0 x), sin(f_1 x), cos(f_1 x), ...], each block as wide as x (D), so
one point of D coordinates becomes D (1 + 2F) numbers (D 2F without the input).

Hash encoding (Müller et al. 2022, "Instant neural graphics primitives"), in pure PyTorch:
L levels of grids over the unit cube [0, 1]^3 with resolutions N_l = floor(N_min b^l),
b = exp((ln N_max - ln N_min) / (L - 1)) (a tiny 1e-9 is added before the floor so that the
last level is exactly N_max despite rounding). Level l has (N_l + 1)^3 vertices, vertex
(i, j, k) at (i, j, k) / N_l, each with a feature vector of F numbers stored in a table:
- dense level, (N_l + 1)^3 <= T = 2^log2_hashmap_size: a table of (N_l + 1)^3 rows indexed
  i + j (N_l + 1) + k (N_l + 1)^2;
- hashed level: a table of T rows indexed by the spatial hash
  (i * 1) xor (j * 2654435761) xor (k * 805459861) mod T (T is a power of two; the products
  are taken in int64, whose low bits equal the reference's uint32 arithmetic).
A point's level feature is the trilinear interpolation of its cell's 8 vertex features; the
encoding concatenates the levels, level-major: [level 0 features, level 1 features, ...].
The tables are one nn.Parameter per level, `HashEncoding.tables[l]`, stored feature-major as
[F, rows_l] (row r's features are tables[l][:, r]), initialised U(-1e-4, 1e-4) from torch's
global generator (seed it with torch.manual_seed). One parameter per level keeps the backward
pass from materialising a gradient the size of all tables once per level; the feature-major
layout and the corner-major [8, N] index arithmetic keep every elementwise operation running
along the long point axis, which is what vectorises on CPU (a trailing axis of 2 or 8 does not).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn


HASH_PRIMES = (1, 2654435761, 805459861)


# ------------------------------------------------------------------ positional encoding


def encoding_frequencies(n_frequencies: int, device: Optional[torch.device] = None) -> Tensor:
    """The positional-encoding frequencies 2^0, 2^1, ..., 2^(F-1).

    Returns:
        [F] float32 on `device`.
    """
    if n_frequencies < 0:
        raise ValueError(f"n_frequencies must be >= 0, got {n_frequencies}")
    return torch.pow(2.0, torch.arange(n_frequencies, dtype=torch.float32, device=device))


def positional_encoding_width(dims: int, n_frequencies: int, include_input: bool = True) -> int:
    """Width of `positional_encoding` of `dims` coordinates: dims (include_input + 2 n_frequencies)."""
    return dims * (int(include_input) + 2 * n_frequencies)


def positional_encoding(x: Tensor, n_frequencies: int, include_input: bool = True) -> Tensor:
    """NeRF's positional encoding [x, sin(2^0 x), cos(2^0 x), ..., sin(2^(F-1) x), cos(2^(F-1) x)].

    Args:
        x: [..., D] coordinates (any float dtype and device).
        n_frequencies: F >= 0.
        include_input: whether the encoding starts with x itself.
    Returns:
        [..., D (include_input + 2F)], each block D wide, in x's dtype.
    """
    freqs = encoding_frequencies(n_frequencies, device=x.device).to(x.dtype)  # [F]
    scaled = x[..., None, :] * freqs[:, None]  # [..., F, D]
    trig = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # [..., F, 2, D]
    trig = trig.reshape(*x.shape[:-1], 2 * n_frequencies * x.shape[-1])
    return torch.cat([x, trig], dim=-1) if include_input else trig


# ------------------------------------------------------------------ trilinear interpolation


def trilinear_interpolation(grid: Tensor, x: Tensor) -> Tensor:
    """Trilinear interpolation of values on a regular grid spanning the unit cube (the reference).

    Grid vertex (i, j, k) sits at (i / (R0 - 1), j / (R1 - 1), k / (R2 - 1)); grid[i, j, k] is its
    value, i along x. Points outside [0, 1]^3 are clamped onto the cube.

    Args:
        grid: [R0, R1, R2, C] with every R >= 2.
        x: [N, 3].
    Returns:
        [N, C] in the promoted dtype of grid and x.
    """
    if grid.dim() != 4 or min(grid.shape[:3]) < 2:
        raise ValueError(f"grid must be [R0, R1, R2, C] with each R >= 2, got {tuple(grid.shape)}")
    if x.dim() != 2 or x.shape[1] != 3:
        raise ValueError(f"x must be [N, 3], got {tuple(x.shape)}")
    dtype = torch.promote_types(torch.promote_types(grid.dtype, x.dtype), torch.float32)
    sizes = torch.tensor(grid.shape[:3], device=x.device)  # [3]
    pos = x.to(dtype).clamp(0.0, 1.0) * (sizes - 1).to(dtype)  # [N, 3] in vertex units
    lower = torch.minimum(torch.floor(pos).long(), sizes - 2)  # [N, 3]
    frac = pos - lower.to(dtype)  # [N, 3] in [0, 1]
    values = grid.to(dtype)
    out = 0.0
    for corner in range(8):
        bits = [(corner >> (2 - axis)) & 1 for axis in range(3)]
        weight = torch.ones_like(frac[:, 0])
        for axis, bit in enumerate(bits):
            weight = weight * (frac[:, axis] if bit else 1.0 - frac[:, axis])
        out = out + weight[:, None] * values[lower[:, 0] + bits[0], lower[:, 1] + bits[1], lower[:, 2] + bits[2]]
    return out


# ------------------------------------------------------------------ hash encoding


def spatial_hash(coords: Tensor, table_size: int) -> Tensor:
    """The hash (i * 1) xor (j * 2654435761) xor (k * 805459861) mod table_size.

    Args:
        coords: [..., 3] non-negative integer vertex coordinates (int64).
        table_size: T, a power of two <= 2^32.
    Returns:
        [...] int64 in [0, T).
    """
    if table_size <= 0 or table_size & (table_size - 1) or table_size > 2**32:
        raise ValueError(f"table_size must be a power of two <= 2^32, got {table_size}")
    coords = coords.long()
    h = coords[..., 0] * HASH_PRIMES[0]
    h = torch.bitwise_xor(h, coords[..., 1] * HASH_PRIMES[1])
    h = torch.bitwise_xor(h, coords[..., 2] * HASH_PRIMES[2])
    return torch.bitwise_and(h, table_size - 1)


def hash_grid_resolutions(n_levels: int, base_resolution: int, finest_resolution: int) -> tuple[int, ...]:
    """N_l = floor(N_min b^l) with b = exp((ln N_max - ln N_min) / (L - 1)), for l < L."""
    if n_levels == 1:
        return (int(base_resolution),)
    growth = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return tuple(int(math.floor(base_resolution * growth**level + 1e-9)) for level in range(n_levels))


class HashEncoding(nn.Module):
    """Multiresolution hash encoding of points in [0, 1]^3 (Müller et al. 2022); see the module docstring.

    Args:
        n_levels: L >= 1.
        features_per_level: F >= 1.
        log2_hashmap_size: T = 2^log2_hashmap_size rows per hashed level (1..32).
        base_resolution: N_min >= 1.
        finest_resolution: N_max >= N_min.
    Attributes:
        tables: nn.ParameterList, tables[l] is [F, rows_l] (feature-major: the feature of table
            row r is tables[l][:, r]), rows_l = (N_l + 1)^3 for a dense level, else T; float32 (torch's
            default dtype).
    """

    def __init__(
        self,
        n_levels: int = 16,
        features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        finest_resolution: int = 2048,
    ):
        super().__init__()
        if n_levels < 1 or features_per_level < 1:
            raise ValueError(f"n_levels and features_per_level must be >= 1, got {n_levels}, {features_per_level}")
        if not 1 <= log2_hashmap_size <= 32:
            raise ValueError(f"log2_hashmap_size must be in 1..32, got {log2_hashmap_size}")
        if base_resolution < 1 or finest_resolution < base_resolution:
            raise ValueError(
                f"need 1 <= base_resolution <= finest_resolution, got {base_resolution}, {finest_resolution}"
            )
        self.n_levels = n_levels
        self.features_per_level = features_per_level
        self.log2_hashmap_size = log2_hashmap_size
        self.base_resolution = base_resolution
        self.finest_resolution = finest_resolution
        self._resolutions = hash_grid_resolutions(n_levels, base_resolution, finest_resolution)
        table_size = 2**log2_hashmap_size
        self._dense = tuple((n + 1) ** 3 <= table_size for n in self._resolutions)
        self._rows = tuple((n + 1) ** 3 if dense else table_size for n, dense in zip(self._resolutions, self._dense))
        self.tables = nn.ParameterList(
            nn.Parameter(torch.empty(features_per_level, rows).uniform_(-1e-4, 1e-4)) for rows in self._rows
        )

    @property
    def out_dim(self) -> int:
        """Width of the encoding: n_levels * features_per_level."""
        return self.n_levels * self.features_per_level

    @property
    def resolutions(self) -> tuple[int, ...]:
        """N_l per level."""
        return self._resolutions

    @property
    def dense_levels(self) -> tuple[bool, ...]:
        """Per level, whether its table is indexed densely (True) or by the spatial hash (False)."""
        return self._dense

    @property
    def table_rows(self) -> tuple[int, ...]:
        """Rows of each level's table: (N_l + 1)^3 when dense, else 2^log2_hashmap_size."""
        return self._rows

    def _corners(self, xt: Tensor, level: int) -> tuple[Tensor, Tensor]:
        """The 8 cell-corner table rows [8, N] and trilinear weights [8, N] of points xt [3, N] at `level`.

        Corner c = 4 a + 2 b + d is vertex lower + (a, b, d). Corner-major layout: every
        elementwise operation runs along the long contiguous N axis, which vectorises on CPU
        (a trailing axis of 8 or 2 does not).
        """
        n = self._resolutions[level]
        pos = xt * n  # [3, N]
        lower = torch.floor(pos).clamp(max=n - 1)  # [3, N]; x = 1 lies in the last cell
        frac = pos - lower  # [3, N], differentiable wrt x
        lower = lower.long()
        if self._dense[level]:
            side = n + 1
            scale = torch.tensor([[1], [side], [side * side]], device=xt.device)
        else:
            scale = torch.tensor([[p] for p in HASH_PRIMES], device=xt.device)
        # per axis, the two vertex coordinates' contributions to the row
        low = lower * scale  # [3, N] int64
        high = low + scale
        if not self._dense[level]:  # mod T (a power of two) commutes with xor: reduce before combining
            low.bitwise_and_(self._rows[level] - 1)
            high.bitwise_and_(self._rows[level] - 1)
        hx, hy, hz = (torch.stack([low[axis], high[axis]]) for axis in range(3))  # [2, N] each
        # int64 rows: index_select's backward (index_add) is far slower with int32 indices on CPU
        if self._dense[level]:
            rows = (hx[:, None] + hy[None]).reshape(4, 1, -1) + hz[None]  # [4, 2, N]
        else:
            rows = torch.bitwise_xor((hx[:, None] ^ hy[None]).reshape(4, 1, -1), hz[None])
        wx, wy, wz = (torch.stack([1.0 - frac[axis], frac[axis]]) for axis in range(3))  # [2, N] each
        weights = (wx[:, None] * wy[None]).reshape(4, 1, -1) * wz[None]  # [4, 2, N]
        return rows.reshape(8, -1), weights.reshape(8, -1)

    def corner_indices(self, x: Tensor, level: int) -> Tensor:
        """Table rows [N, 8] (int64) of the corners of the cells that points x [N, 3] fall in at `level`.

        Column c = 4 a + 2 b + d is the vertex floor(N_l x) + (a, b, d) (the lower corner
        clamped to N_l - 1, so that x = 1 lies in the last cell).
        """
        with torch.no_grad():
            return self._corners(self._positions(x).T, level)[0].T

    def _positions(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != 3:
            raise ValueError(f"x must be [N, 3], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a float tensor, got {x.dtype}")
        # index arithmetic at least in float32 (half precision cannot resolve fine levels)
        return x.to(torch.promote_types(x.dtype, torch.float32)).clamp(0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Encode points.

        Args:
            x: [N, 3] in [0, 1]^3 (points outside are clamped onto the cube), any float dtype, on
                the tables' device.
        Returns:
            [N, n_levels * features_per_level], level-major, in the promoted dtype of x (at least
            float32) and the tables; differentiable wrt the tables and x.
        """
        xt = self._positions(x).T.contiguous()  # [3, N]
        out_dtype = torch.promote_types(xt.dtype, self.tables[0].dtype)
        features = []
        for level, table in enumerate(self.tables):
            rows, weights = self._corners(xt, level)  # [8, N], [8, N]
            corner_features = table.index_select(1, rows.reshape(-1)).reshape(table.shape[0], 8, -1)  # [F, 8, N]
            corner_features = corner_features.to(out_dtype)
            features.append((corner_features * weights.to(out_dtype)).sum(dim=1))  # [F, N]
        return torch.cat(features, dim=0).T.contiguous()

    def extra_repr(self) -> str:
        return (
            f"n_levels={self.n_levels}, features_per_level={self.features_per_level}, "
            f"log2_hashmap_size={self.log2_hashmap_size}, base_resolution={self.base_resolution}, "
            f"finest_resolution={self.finest_resolution}"
        )
