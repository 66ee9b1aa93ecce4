"""Radiance fields and how rays are rendered through them.

Two models, both `torch.nn.Module`s mapping positions [N, 3] (and unit view directions
[N, 3]) to density [N] and colour [N, 3] in [0, 1]:

- `NerfMLP` (Mildenhall et al. 2020): positions and directions go through the positional
  encoding (`inrcore.nerf.encodings`), a `depth` x `width` ReLU MLP re-injects the encoded
  position after layer `skip`, density comes from the position alone (softplus of the raw
  value shifted by -1, as mip-NeRF, so no sample starts dead) and colour from a branch of
  `width / 2` units that also sees the encoded direction. `NerfRenderer` samples
  `n_coarse` stratified points per ray for a coarse network, then `n_fine` more from its
  weights for a fine network evaluated on all of them.
- `NgpField` (Mueller et al. 2022): a multiresolution hash encoding of the position
  normalised to the scene box, a one-hidden-layer MLP to density (exp with a clamped
  gradient, "trunc_exp") and 15 features, and a two-hidden-layer colour MLP on the features
  and the encoded direction. `NgpRenderer` marches each ray with a fixed step through the
  box, keeps the samples whose cell of an `OccupancyGrid` holds density, drops those behind
  an opaque surface with a gradient-free density pass, and renders the rest (packed samples).

Both renderers return a dict of tensors for R rays: "rgb" [R, 3] composited on the
background, "depth" [R] (expected distance over the ray's opacity, 0 where empty),
"opacity" [R], plus "rgb_coarse" [R, 3] for NeRF (trained too) and "samples" (how many
points the field was evaluated at). Ray directions must be unit vectors; distances are
along them. Nothing here picks a device: modules live where the caller moves them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from inrcore.geometry.rays import ray_box_intersection
from inrcore.nerf.encodings import HashEncoding, positional_encoding, positional_encoding_width
from inrcore.nerf.settings import NerfConfig
from inrcore.nerf.volrender import (
    accumulate_along_rays,
    accumulate_along_rays_packed,
    composite_on_background,
    importance_samples,
    intervals_from_samples,
    render_weight_from_density,
    render_weight_from_density_packed,
    stratified_intervals,
)


# Transmittance below which samples further along a ray no longer count (early stop).
EARLY_STOP_TRANSMITTANCE = 1e-4
# A cell is occupied when density x render_step exceeds min(mean over cells, this).
OCCUPANCY_THRESHOLD = 0.01
OCCUPANCY_DECAY = 0.95
# Steps during which every cell of the occupancy grid is refreshed (then a quarter at a time).
OCCUPANCY_WARMUP = 256


class NerfMLP(nn.Module):
    """The NeRF network: (positions [N, 3], unit directions [N, 3]) -> (density [N], rgb [N, 3])."""

    def __init__(self, depth: int = 8, width: int = 256, skip: int = 4, position_frequencies: int = 10,
                 direction_frequencies: int = 4, positional_encoding: bool = True, view_dependent: bool = True):
        super().__init__()
        self.position_frequencies = position_frequencies if positional_encoding else 0
        self.direction_frequencies = direction_frequencies if positional_encoding else 0
        self.view_dependent = view_dependent
        self.skip = skip
        position_width = positional_encoding_width(3, self.position_frequencies)
        direction_width = positional_encoding_width(3, self.direction_frequencies) if view_dependent else 0
        layers = []
        for i in range(depth):
            fan_in = position_width if i == 0 else width
            if i == skip + 1 and skip > 0:
                fan_in = width + position_width
            layers.append(nn.Linear(fan_in, width))
        self.trunk = nn.ModuleList(layers)
        self.density_head = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.colour_hidden = nn.Linear(width + direction_width, width // 2)
        self.colour_head = nn.Linear(width // 2, 3)

    def _trunk(self, positions: torch.Tensor) -> torch.Tensor:
        encoded = positional_encoding(positions, self.position_frequencies)
        h = encoded
        for i, layer in enumerate(self.trunk):
            if i == self.skip + 1 and self.skip > 0:
                h = torch.cat([h, encoded], dim=-1)
            h = torch.relu(layer(h))
        return h

    def density(self, positions: torch.Tensor) -> torch.Tensor:
        """Density [N] at positions [N, 3]."""
        return nn.functional.softplus(self.density_head(self._trunk(positions))[..., 0] - 1.0)

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._trunk(positions)
        sigma = nn.functional.softplus(self.density_head(h)[..., 0] - 1.0)
        features = self.feature(h)
        if self.view_dependent:
            features = torch.cat([features, positional_encoding(directions, self.direction_frequencies)], dim=-1)
        rgb = torch.sigmoid(self.colour_head(torch.relu(self.colour_hidden(features))))
        return sigma, rgb


class _TruncExp(torch.autograd.Function):
    """exp(x) whose gradient uses exp(min(x, 15)), so one large density cannot blow up training."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


class NgpField(nn.Module):
    """Hash-grid radiance field over the cube [-bound, bound]^3: (positions, directions) -> (density, rgb)."""

    def __init__(self, bound: float, levels: int = 16, features: int = 2, log2_size: int = 17,
                 base_resolution: int = 16, finest_resolution: int = 1024, width: int = 64,
                 direction_frequencies: int = 4, view_dependent: bool = True):
        super().__init__()
        self.bound = float(bound)
        self.direction_frequencies = direction_frequencies
        self.view_dependent = view_dependent
        self.encoding = HashEncoding(levels, features, log2_size, base_resolution, finest_resolution)
        self.density_net = nn.Sequential(nn.Linear(self.encoding.out_dim, width), nn.ReLU(), nn.Linear(width, 16))
        direction_width = positional_encoding_width(3, direction_frequencies) if view_dependent else 0
        self.colour_net = nn.Sequential(
            nn.Linear(15 + direction_width, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, 3),
        )

    def _features(self, positions: torch.Tensor) -> torch.Tensor:
        unit = ((positions + self.bound) / (2.0 * self.bound)).clamp(0.0, 1.0)
        return self.density_net(self.encoding(unit))

    def density(self, positions: torch.Tensor) -> torch.Tensor:
        """Density [N] at positions [N, 3]."""
        return trunc_exp(self._features(positions)[..., 0])

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._features(positions)
        sigma = trunc_exp(h[..., 0])
        features = h[..., 1:]
        if self.view_dependent:
            features = torch.cat([features, positional_encoding(directions, self.direction_frequencies)], dim=-1)
        return sigma, torch.sigmoid(self.colour_net(features))


class OccupancyGrid(nn.Module):
    """Which cells of a `resolution`^3 grid over [-bound, bound]^3 hold density (buffers only).

    `density` keeps an exponential moving average of the field's density per cell, refreshed
    by `update`; `occupied` marks cells whose density x `step` exceeds min(mean, threshold).
    It starts all occupied, so nothing is skipped before the first update.
    """

    def __init__(self, bound: float, resolution: int, step: float):
        super().__init__()
        self.bound, self.resolution, self.step = float(bound), int(resolution), float(step)
        cells = self.resolution ** 3
        self.register_buffer("density", torch.zeros(cells))
        self.register_buffer("occupied", torch.ones(cells, dtype=torch.bool))

    def cell_index(self, positions: torch.Tensor) -> torch.Tensor:
        """Flat cell index [N] (x slowest) of positions [N, 3] clamped into the grid."""
        r = self.resolution
        ijk = ((positions + self.bound) / (2.0 * self.bound) * r).long().clamp(0, r - 1)
        return (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2]

    def query(self, positions: torch.Tensor) -> torch.Tensor:
        """Occupied [N] bool for positions [N, 3]; points outside the box are not occupied."""
        inside = (positions.abs() <= self.bound).all(dim=-1)
        return inside & self.occupied[self.cell_index(positions)]

    @torch.no_grad()
    def update(self, density_fn, step: int, generator: Optional[torch.Generator] = None,
               batch: int = 65536) -> None:
        """Refresh cells from density_fn(positions [N, 3]) -> [N] at one random point per cell:
        every cell during the first OCCUPANCY_WARMUP steps, then a random quarter of all cells
        plus a quarter of the occupied ones."""
        r, device = self.resolution, self.density.device
        cells = r ** 3
        if step < OCCUPANCY_WARMUP:
            indices = torch.arange(cells, device=device)
        else:
            random_cells = torch.randint(cells, (cells // 4,), device=device, generator=generator)
            occupied = torch.nonzero(self.occupied)[:, 0]
            pick = torch.randint(max(len(occupied), 1), (min(len(occupied), cells // 4),), device=device,
                                 generator=generator)
            indices = torch.cat([random_cells, occupied[pick]]).unique()
        ijk = torch.stack([indices // (r * r), (indices // r) % r, indices % r], dim=-1).float()
        jitter = torch.rand(ijk.shape, device=device, generator=generator)
        positions = (ijk + jitter) / r * (2.0 * self.bound) - self.bound
        values = torch.cat([density_fn(chunk) for chunk in positions.split(batch)])
        self.density[indices] = torch.maximum(self.density[indices] * OCCUPANCY_DECAY, values)
        threshold = min(float(self.density.clamp(min=0).mean()) * self.step, OCCUPANCY_THRESHOLD)
        self.occupied.copy_(self.density * self.step > threshold)


@dataclass
class NerfRenderer:
    """Coarse and fine NeRF networks and how rays are sampled through them."""

    coarse: NerfMLP
    fine: Optional[NerfMLP]
    near: float
    far: float
    n_coarse: int
    n_fine: int
    background: torch.Tensor

    def modules(self) -> dict[str, nn.Module]:
        return {"coarse": self.coarse, **({"fine": self.fine} if self.fine is not None else {})}

    def render(self, origins: torch.Tensor, directions: torch.Tensor, perturb: bool,
               generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """Render R rays (origins [R, 3], unit directions [R, 3])."""
        rays = origins.shape[0]
        near = torch.full((rays,), self.near, device=origins.device, dtype=origins.dtype)
        far = torch.full_like(near, self.far)
        t_starts, t_ends, t_mids = stratified_intervals(near, far, self.n_coarse, perturb, generator)
        coarse = _render_padded(self.coarse, origins, directions, t_starts, t_ends, t_mids, self.background)
        if self.fine is None or self.n_fine == 0:
            return {**coarse, "rgb_coarse": coarse["rgb"]}
        edges = torch.cat([t_starts, t_ends[:, -1:]], dim=-1)
        t_fine = importance_samples(edges, coarse["weights"].detach(), self.n_fine, perturb, generator)
        t_all, _ = torch.sort(torch.cat([t_mids, t_fine.detach()], dim=-1), dim=-1)
        starts, ends = intervals_from_samples(t_all, near, far)
        fine = _render_padded(self.fine, origins, directions, starts, ends, t_all, self.background)
        fine["samples"] = coarse["samples"] + fine["samples"]
        return {**fine, "rgb_coarse": coarse["rgb"]}


def _render_padded(network, origins, directions, t_starts, t_ends, t_points, background) -> dict:
    rays, samples = t_points.shape
    positions = origins[:, None, :] + directions[:, None, :] * t_points[..., None]  # [R, S, 3]
    view = directions[:, None, :].expand(rays, samples, 3)
    sigma, rgb = network(positions.reshape(-1, 3), view.reshape(-1, 3))
    sigma, rgb = sigma.reshape(rays, samples), rgb.reshape(rays, samples, 3)
    weights, _, _ = render_weight_from_density(t_starts, t_ends, sigma)
    opacity = accumulate_along_rays(weights, None)  # [R, 1]
    colour = accumulate_along_rays(weights, rgb)
    depth = accumulate_along_rays(weights, ((t_starts + t_ends) / 2)[..., None])[:, 0]
    return {"rgb": composite_on_background(colour, opacity, background), "opacity": opacity[:, 0],
            "depth": depth / opacity[:, 0].clamp(min=1e-6), "weights": weights, "samples": rays * samples}


@dataclass
class NgpRenderer:
    """A hash-grid field, its occupancy grid and how rays march through them."""

    field: NgpField
    grid: OccupancyGrid
    step: float
    background: torch.Tensor

    def modules(self) -> dict[str, nn.Module]:
        return {"field": self.field, "grid": self.grid}

    def render(self, origins: torch.Tensor, directions: torch.Tensor, perturb: bool,
               generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """Render R rays (origins [R, 3], unit directions [R, 3])."""
        rays, device = origins.shape[0], origins.device
        t_near, t_far, hit = ray_box_intersection(origins, directions, self.field.bound)
        ray_indices, t_starts, t_ends = self._march(origins, directions, t_near, t_far, hit, perturb, generator)
        if len(ray_indices):  # drop samples hidden behind opaque ones, without building a graph
            with torch.no_grad():
                positions = origins[ray_indices] + directions[ray_indices] * ((t_starts + t_ends) / 2)[:, None]
                sigma = self.field.density(positions)
                _, transmittance, alphas = render_weight_from_density_packed(t_starts, t_ends, sigma, ray_indices, rays)
                kept = torch.nonzero((transmittance > EARLY_STOP_TRANSMITTANCE) & (alphas > 0), as_tuple=True)[0]
            ray_indices, t_starts, t_ends = ray_indices[kept], t_starts[kept], t_ends[kept]  # one count read back
        t_mids = (t_starts + t_ends) / 2
        positions = origins[ray_indices] + directions[ray_indices] * t_mids[:, None]
        sigma, rgb = self.field(positions, directions[ray_indices])
        weights, _, _ = render_weight_from_density_packed(t_starts, t_ends, sigma, ray_indices, rays)
        opacity = accumulate_along_rays_packed(weights, None, ray_indices, rays)  # [R, 1]
        colour = accumulate_along_rays_packed(weights, rgb, ray_indices, rays)
        depth = accumulate_along_rays_packed(weights, t_mids[:, None], ray_indices, rays)[:, 0]
        return {"rgb": composite_on_background(colour, opacity, self.background), "opacity": opacity[:, 0],
                "depth": depth / opacity[:, 0].clamp(min=1e-6), "samples": int(len(ray_indices)),
                "rays": torch.tensor(rays, device=device)}

    def _march(self, origins, directions, t_near, t_far, hit, perturb, generator):
        """Packed samples (ray_indices [P], t_starts [P], t_ends [P]) every `step` inside the box,
        in occupied cells only; a random offset per ray when perturbing."""
        step = self.step
        length = (t_far - t_near).masked_fill(~hit, 0.0)
        n_max = int(math.ceil(float(length.max()) / step)) if len(length) else 0
        if n_max == 0:
            empty = torch.zeros(0, device=origins.device)
            return empty.long(), empty, empty
        offset = (torch.rand(origins.shape[0], 1, device=origins.device, generator=generator) if perturb
                  else torch.full((origins.shape[0], 1), 0.5, device=origins.device))
        t_starts = t_near[:, None] + (torch.arange(n_max, device=origins.device)[None, :] + offset - 0.5) * step
        t_starts = t_starts.clamp(min=0.0)
        t_ends = t_starts + step
        t_mids = t_starts + 0.5 * step
        valid = (t_mids < t_far[:, None]) & hit[:, None]
        positions = origins[:, None, :] + directions[:, None, :] * t_mids[..., None]
        valid &= self.grid.query(positions.reshape(-1, 3)).reshape(valid.shape)
        ray_indices, sample = torch.nonzero(valid, as_tuple=True)  # row-major: per ray, sorted by t
        return ray_indices, t_starts[ray_indices, sample], t_ends[ray_indices, sample]


def default_render_step(bound: float) -> float:
    """The NGP marching step when none is set: the scene box's diagonal / 256."""
    return 2.0 * math.sqrt(3.0) * bound / 256.0


def build_renderer(config: NerfConfig, near: float, far: float, device: torch.device):
    """The renderer (`NerfRenderer` or `NgpRenderer`) of `config`, initialised from `config.seed`,
    on `device`. `near`/`far` bound NeRF's samples (NGP marches the scene box instead)."""
    torch.manual_seed(config.seed)
    background = torch.tensor(config.background, dtype=torch.float32, device=device)
    if config.model == "nerf":
        def network():
            return NerfMLP(config.depth, config.width, config.skip, config.position_frequencies,
                           config.direction_frequencies, config.positional_encoding, config.view_dependent).to(device)
        coarse = network()
        fine = network() if config.n_fine > 0 else None
        return NerfRenderer(coarse, fine, float(near), float(far), config.n_coarse, config.n_fine, background)
    step = config.render_step or default_render_step(config.bound)
    field = NgpField(config.bound, config.hash_levels, config.hash_features, config.hash_log2_size,
                     config.hash_base_resolution, config.hash_finest_resolution, config.ngp_width,
                     config.direction_frequencies if config.positional_encoding else 0,
                     config.view_dependent).to(device)
    grid = OccupancyGrid(config.bound, config.grid_resolution, step).to(device)
    return NgpRenderer(field, grid, step, background)


def render_rays_in_chunks(renderer, origins: torch.Tensor, directions: torch.Tensor,
                          chunk: int = 4096) -> dict[str, torch.Tensor]:
    """Render many rays (origins [R, 3], directions [R, 3]) without gradients, `chunk` at a time,
    deterministically (no jitter). Returns "rgb" [R, 3], "depth" [R], "opacity" [R]."""
    out: dict[str, list] = {"rgb": [], "depth": [], "opacity": []}
    with torch.no_grad():
        for o, d in zip(origins.split(chunk), directions.split(chunk)):
            result = renderer.render(o, d, perturb=False)
            for key in out:
                out[key].append(result[key])
    return {key: torch.cat(value) for key, value in out.items()}
