"""Ray casting neural implicit fields: range-bound casting per ray and by frusta, and sphere tracing.

After Sharp & Jacobson 2022 ("Spelunking the deep", section 5). A ray is marched with segments
[t, t + step]. The field's range over a segment (`arithmetic.range_bound`, a parallelepiped
with one axis) either certifies one sign, so the segment holds no surface: the ray moves on and
the next step is `grow` times longer; or it is UNKNOWN: the step is cut by `shrink` (the
segment is split, its front part tried next). A segment still UNKNOWN at the minimum length
`tolerance` has its end points evaluated exactly: opposite signs are a hit (located further by
bisection), equal signs let the ray inch on by the segment uncertified (as the reference code
does: a pair of roots closer than `tolerance` can slip through). Consecutive certified segments
overlap by 1 - `safety` of their length, so rounding leaves no gap. A "step" is one bound
evaluation. The defaults (tolerance 1e-3, 512 steps, grow 1.5, shrink 0.5, safety 0.98, first
step 0.1 of the longest path, split when the tile is wider than twice the step, 16 x 16
initial tiles) are those of the authors' code (github.com/nmwsharp/neural-implicit-queries).

Frusta: the image starts as `tiles_per_side`^2 tiles of pixels. A tile's rays over [t0, t1]
fill a region inside one parallelepiped (three axes: the segment along the tile's middle ray
and the tile's two sides at depth t1), so one bound certifies that segment for every pixel of
the tile and the whole tile advances. A tile is halved (across its longer side) when its width
at the current depth exceeds `refine_width` times its step, or its step falls below the
tolerance; a single-pixel tile finishes with per-ray casting from where its tile stopped. As in
the authors' code each pixel is a point sample through its centre: a tile's box spans the rays
of its pixel centres.

Only the cube [-bound, bound]^3 is searched: every ray is clipped to it first (rays missing it
report no hit) and the first sign change of the field along the ray inside the cube is the hit,
so a ray that starts inside the solid reports where it leaves it.

Cameras (`Camera`): orthographic, framed exactly as `render.pixel_rays` (a tile of parallel
rays sweeps a box), or perspective (a pinhole; a tile sweeps a true frustum, bounded by the
box around its far end). Sphere tracing steps each ray by |f| / |d|: it is safe only where the
field never exceeds the distance to its zero set (a true SDF, or one scaled down by
`step_scale`).

Everything runs on the device (and in the dtype) of the field's parameters.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field as dc_field
from typing import Optional

import numpy as np
import torch

from .arithmetic import UNKNOWN, range_bound
from .networks import FieldSpec, Params, evaluate_field
from .render import BACKGROUND, camera_axes, write_png

METHODS = ("ray", "frusta", "sphere")


@dataclass(frozen=True)
class CastOptions:
    """Settings of range-bound casting (per ray and by frusta) and of sphere tracing.

    tolerance: minimum segment length in t; hits are located to tolerance / 2^bisections.
      Sphere tracing: a ray has hit when |f| < tolerance.
    max_steps: per ray: bound evaluations (range casting) or field evaluations (sphere
      tracing) before the ray gives up (it then reports no hit and counts as unfinished);
      frusta: marching rounds before the remaining tiles are split down to pixels.
    grow, shrink: step factors after a certified / an UNKNOWN segment.
    safety: a certified segment of length L moves the ray by safety * L.
    initial_step: the first step, as a fraction of the cube's diagonal 2 sqrt(3) bound.
    refine_width: a tile wider (at its current far depth) than refine_width * step is halved.
    tiles_per_side: the image starts as this many tiles along each side.
    bisections: bisection rounds locating a hit inside its last segment.
    mode, max_symbols: passed to `arithmetic.range_bound` ("affine" or "interval").
    batch_size: boxes per bound evaluation call (memory: affine forms grow with the width).
    step_scale: sphere tracing steps by step_scale * |f|.
    """

    tolerance: float = 1e-3
    max_steps: int = 512
    grow: float = 1.5
    shrink: float = 0.5
    safety: float = 0.98
    initial_step: float = 0.1
    refine_width: float = 2.0
    tiles_per_side: int = 16
    bisections: int = 10
    mode: str = "affine"
    max_symbols: Optional[int] = None
    batch_size: int = 1024
    step_scale: float = 1.0

    def __post_init__(self):
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be positive, got {self.tolerance}")
        if not (self.grow >= 1.0 and 0.0 < self.shrink < 1.0 and 0.0 < self.safety <= 1.0):
            raise ValueError("need grow >= 1, 0 < shrink < 1 and 0 < safety <= 1")
        if self.max_steps < 1 or self.tiles_per_side < 1 or self.batch_size < 1 or self.bisections < 0:
            raise ValueError("max_steps, tiles_per_side and batch_size must be positive, bisections >= 0")
        if not (self.initial_step > 0 and self.refine_width > 0 and self.step_scale > 0):
            raise ValueError("initial_step, refine_width and step_scale must be positive")


@dataclass(frozen=True, eq=False)
class RayCast:
    """Per-ray results of `cast_rays` / `sphere_trace` (N rays).

    t [N]: hit parameter along the ray (in units of the ray's direction vector), NaN where no hit.
    hit [N] bool. steps [N] long: bound evaluations (range casting) or field evaluations
    (sphere tracing) spent on the ray. unfinished [N] bool: gave up after max_steps.
    """

    t: torch.Tensor
    hit: torch.Tensor
    steps: torch.Tensor
    unfinished: torch.Tensor


@dataclass(frozen=True, eq=False)
class FieldRender:
    """An image of a field's zero level set (`render_field`).

    depth [H, W]: distance from the pixel's ray origin to the hit, +inf where no hit.
    normals [H, W, 3]: unit gradient of the field at the hit, zero where no hit.
    hit [H, W] bool. stats: "method", "steps" (bound or field evaluations in all), "seconds"
    (casting), "normal_seconds", "hits", "unfinished", and per method details ("tile_steps"
    and "ray_steps", "tiles" for frusta).
    """

    depth: torch.Tensor
    normals: torch.Tensor
    hit: torch.Tensor
    stats: dict = dc_field(default_factory=dict)


# ----------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class Camera:
    """A pinhole or orthographic camera over an (H, W) image of pixel-centre rays.

    Pixel (row i, column j) sits at u = j + 0.5 - W/2, v = H/2 - i - 0.5 (in pixels) from
    the image centre. Orthographic: the ray starts at eye + pixel (u right + v up) and runs
    along `forward`. Perspective: it starts at `eye` and runs along forward + pixel (u right +
    v up), `pixel` being the size of a pixel on the image plane at unit distance.
    """

    size: tuple[int, int]
    eye: tuple[float, float, float]
    forward: tuple[float, float, float]
    right: tuple[float, float, float]
    up: tuple[float, float, float]
    pixel: float
    perspective: bool = False

    def vectors(self, device=None, dtype=torch.float32) -> tuple[torch.Tensor, ...]:
        """eye, forward, right, up as [3] tensors."""
        return tuple(torch.tensor(v, device=device, dtype=dtype) for v in (self.eye, self.forward, self.right, self.up))

    def lateral_scale(self) -> tuple[float, float]:
        """(a, b): at parameter t a ray's offset from the central ray is (a + b t) pixel-units."""
        return (0.0, self.pixel) if self.perspective else (self.pixel, 0.0)

    def uv(self, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """u [W] (columns) and v [H] (rows) of the pixel centres, in pixels."""
        height, width = self.size
        u = torch.arange(width, device=device, dtype=dtype) + 0.5 - width / 2.0
        v = height / 2.0 - torch.arange(height, device=device, dtype=dtype) - 0.5
        return u, v

    def rays(self, device=None, dtype=torch.float32, unit: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One ray per pixel in row-major order: origins [H*W, 3], directions [H*W, 3].

        unit=False gives perspective directions forward + pixel (u right + v up), along which t
        is the depth along `forward` (the parametrisation frusta march in).
        """
        eye, forward, right, up = self.vectors(device, dtype)
        u, v = self.uv(device, dtype)
        offset = (u[None, :, None] * right + v[:, None, None] * up).reshape(-1, 3)  # [H*W, 3]
        a, b = self.lateral_scale()
        origins = eye + a * offset
        directions = forward + b * offset
        if unit:
            directions = directions / directions.norm(dim=-1, keepdim=True)
        return origins, directions


def orthographic_camera(size: tuple[int, int], azimuth_deg: float = 35.0, elevation_deg: float = 25.0,
                        bound: float = 1.0, distance: Optional[float] = None) -> Camera:
    """The camera of `render.render_mesh` / `render.pixel_rays` (same framing, same rays).

    distance: how far from the origin the image plane is (default (sqrt 3 + 1) bound).
    """
    height, width = (int(s) for s in size)
    towards, right, up = camera_axes(azimuth_deg, elevation_deg)
    distance = (math.sqrt(3.0) + 1.0) * bound if distance is None else float(distance)
    pixel = 2.0 * math.sqrt(3.0) * bound / min(height, width)
    return Camera((height, width), tuple(distance * towards), tuple(-towards), tuple(right), tuple(up), pixel)


def perspective_camera(size: tuple[int, int], azimuth_deg: float = 35.0, elevation_deg: float = 25.0,
                       bound: float = 1.0, distance: Optional[float] = None) -> Camera:
    """A pinhole at `distance` (default 3 sqrt(3) bound) from the origin, looking at it, whose
    view just holds the sphere of radius sqrt(3) bound around [-bound, bound]^3 along the shorter side."""
    height, width = (int(s) for s in size)
    towards, right, up = camera_axes(azimuth_deg, elevation_deg)
    distance = 3.0 * math.sqrt(3.0) * bound if distance is None else float(distance)
    radius = math.sqrt(3.0) * bound
    if distance <= radius:
        raise ValueError(f"distance {distance} must exceed sqrt(3) bound = {radius}")
    half_tan = math.tan(math.asin(radius / distance))
    pixel = 2.0 * half_tan / min(height, width)
    return Camera((height, width), tuple(distance * towards), tuple(-towards), tuple(right), tuple(up), pixel, True)


def clip_to_cube(origins: torch.Tensor, directions: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where rays o + t d (t >= 0) are inside [-bound, bound]^3: (t_near [N], t_far [N]).

    A ray missing the cube has t_near > t_far.
    """
    inside = origins.abs() <= bound
    safe = torch.where(directions == 0, torch.ones_like(directions), directions)
    t1, t2 = (-bound - origins) / safe, (bound - origins) / safe
    lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
    inf = torch.full_like(lo, math.inf)
    lo = torch.where(directions == 0, torch.where(inside, -inf, inf), lo)
    hi = torch.where(directions == 0, torch.where(inside, inf, -inf), hi)
    return lo.amax(-1).clamp(min=0.0), hi.amin(-1)


# ----------------------------------------------------------------------------- field helpers


def _device_dtype(params: Params) -> tuple[torch.device, torch.dtype]:
    tensor = next(iter(params.values()))
    return tensor.device, tensor.dtype


@torch.no_grad()
def field_values(spec: FieldSpec, params: Params, points: torch.Tensor, batch: int = 65536) -> torch.Tensor:
    """Exact field values at points [N, 3] -> [N]."""
    if len(points) == 0:
        return points.new_zeros(0)
    return torch.cat([evaluate_field(spec, params, points[i:i + batch])[..., 0] for i in range(0, len(points), batch)])


def field_normals(spec: FieldSpec, params: Params, points: torch.Tensor, batch: int = 16384) -> torch.Tensor:
    """Unit gradients of the field at points [N, 3] -> [N, 3] (zero where the gradient vanishes)."""
    out = []
    for i in range(0, len(points), batch):
        with torch.enable_grad():
            x = points[i:i + batch].detach().clone().requires_grad_(True)
            values = evaluate_field(spec, params, x)
            (grad,) = torch.autograd.grad(values.sum(), x)
        norm = grad.norm(dim=-1, keepdim=True)
        out.append(torch.where(norm > 0, grad / norm.clamp(min=1e-30), torch.zeros_like(grad)))
    return torch.cat(out) if out else points.new_zeros(0, 3)


def certified(spec: FieldSpec, params: Params, centre: torch.Tensor, axes: torch.Tensor,
              options: CastOptions = CastOptions()) -> torch.Tensor:
    """Whether the field has one sign over each box {centre + sum_j s_j axes_j, |s_j| <= 1}:
    centre [B, 3], axes [B, k, 3] -> bool [B], in `options.batch_size` chunks."""
    if len(centre) == 0:
        return torch.zeros(0, dtype=torch.bool, device=centre.device)
    parts = []
    with torch.no_grad():
        for i in range(0, len(centre), options.batch_size):
            sign = range_bound(spec, params, centre[i:i + options.batch_size], axes[i:i + options.batch_size],
                               mode=options.mode, max_symbols=options.max_symbols)
            parts.append(sign != UNKNOWN)
    return torch.cat(parts)


def _bisect(spec, params, origins, directions, a, b, iterations: int) -> torch.Tensor:
    """A point of sign change in [a, b] along each ray (the ends differ in inside-ness f <= 0),
    to (b - a) / 2^(iterations + 1)."""
    inside_a = field_values(spec, params, origins + a[:, None] * directions) <= 0
    for _ in range(iterations):
        mid = (a + b) / 2
        same = (field_values(spec, params, origins + mid[:, None] * directions) <= 0) == inside_a
        a, b = torch.where(same, mid, a), torch.where(same, b, mid)
    return (a + b) / 2


# ----------------------------------------------------------------------------- per-ray casting


def _march(spec, params, origins, directions, t, t_end, step, options: CastOptions) -> RayCast:
    """Range-bound casting of rays o + t d from t to t_end (each [N]), first steps `step` [N]."""
    n, device = len(origins), origins.device
    out_t = torch.full((n,), math.nan, dtype=origins.dtype, device=device)
    out_hit = torch.zeros(n, dtype=torch.bool, device=device)
    out_steps = torch.zeros(n, dtype=torch.long, device=device)
    out_unfinished = torch.zeros(n, dtype=torch.bool, device=device)
    index = torch.nonzero(t <= t_end).flatten()
    o, d, t, t_end, step = origins[index], directions[index], t[index], t_end[index], step[index]
    count = torch.zeros(len(index), dtype=torch.long, device=device)
    tol = options.tolerance
    step = step.clamp(min=tol)
    while len(index):
        t1 = torch.minimum(t + step, t_end)
        half = (t1 - t) / 2
        sure = certified(spec, params, o + (t + half)[:, None] * d, (half[:, None] * d)[:, None, :], options)
        count += 1
        small = ~sure & (step <= tol)
        hit = torch.zeros_like(sure)
        hit_t = torch.full_like(t, math.nan)
        if small.any():
            which = torch.nonzero(small).flatten()
            inside0 = field_values(spec, params, o[which] + t[which, None] * d[which]) <= 0
            inside1 = field_values(spec, params, o[which] + t1[which, None] * d[which]) <= 0
            change = inside0 != inside1
            crossing = which[change]
            hit[crossing] = True
            hit_t[crossing] = _bisect(spec, params, o[crossing], d[crossing], t[crossing], t1[crossing],
                                      options.bisections)
        miss = (sure | small) & ~hit & (t1 >= t_end)
        t = torch.where(sure, t + options.safety * (t1 - t), torch.where(small, t1, t))
        step = torch.where(sure, step * options.grow, (step * options.shrink).clamp(min=tol))
        gave_up = ~hit & ~miss & (count >= options.max_steps)
        done = hit | miss | gave_up
        if done.any():
            rows = index[done]
            out_t[rows] = hit_t[done]
            out_hit[rows] = hit[done]
            out_steps[rows] = count[done]
            out_unfinished[rows] = gave_up[done]
            keep = ~done
            index, o, d, t, t_end, step, count = (x[keep] for x in (index, o, d, t, t_end, step, count))
    return RayCast(out_t, out_hit, out_steps, out_unfinished)


def cast_rays(spec: FieldSpec, params: Params, origins: torch.Tensor, directions: torch.Tensor,
              bound: float = 1.0, options: CastOptions = CastOptions()) -> RayCast:
    """Range-bound casting of rays o + t d, t >= 0, clipped to [-bound, bound]^3.

    Args:
        origins, directions: [N, 3] (t is in units of |d|: pass unit directions for distances).
    Returns:
        `RayCast`: the first sign change of the field along each ray inside the cube.
    """
    device, dtype = _device_dtype(params)
    origins, directions = origins.to(device, dtype), directions.to(device, dtype)
    near, far = clip_to_cube(origins, directions, bound)
    speed = directions.norm(dim=-1).clamp(min=1e-30)
    step = options.initial_step * 2.0 * math.sqrt(3.0) * bound / speed
    return _march(spec, params, origins, directions, near, far, step, options)


# ----------------------------------------------------------------------------- frusta


def _tile_extremes(near: torch.Tensor, far: torch.Tensor, r0, r1, c0, c1) -> tuple[torch.Tensor, torch.Tensor]:
    """min of near [H, W] and max of far [H, W] over each tile's pixels rows [r0, r1) x cols [c0, c1)."""
    height, width = near.shape
    rows = r0[:, None] + torch.arange(int((r1 - r0).max()), device=near.device)  # [T, h]
    cols = c0[:, None] + torch.arange(int((c1 - c0).max()), device=near.device)  # [T, w]
    mask = (rows < r1[:, None])[:, :, None] & (cols < c1[:, None])[:, None, :]
    rows, cols = rows.clamp(max=height - 1)[:, :, None], cols.clamp(max=width - 1)[:, None, :]
    lo = torch.where(mask, near[rows, cols], torch.full_like(mask, math.inf, dtype=near.dtype)).amin((1, 2))
    hi = torch.where(mask, far[rows, cols], torch.full_like(mask, -math.inf, dtype=far.dtype)).amax((1, 2))
    return lo, hi


def cast_frusta(spec: FieldSpec, params: Params, camera: Camera, bound: float = 1.0,
                options: CastOptions = CastOptions()) -> tuple[RayCast, dict]:
    """Range-bound casting of a camera's pixel rays by frusta (tiles of pixels).

    Returns:
        (`RayCast` over the H*W pixels in row-major order, with t along the camera's
        unit=False directions, i.e. depth along `forward` for a perspective camera; steps are
        those spent on each pixel after its tile became a single pixel), and stats
        {"tile_steps", "ray_steps", "tiles"} (bound evaluations of multi-pixel tiles, of
        single pixels, and tiles formed).
    """
    device, dtype = _device_dtype(params)
    height, width = camera.size
    eye, forward, right, up = camera.vectors(device, dtype)
    a, b = camera.lateral_scale()
    origins, directions = camera.rays(device, dtype, unit=False)
    near, far = clip_to_cube(origins, directions, bound)
    near_img = torch.where(near <= far, near, torch.full_like(near, math.inf)).reshape(height, width)
    far_img = torch.where(near <= far, far, torch.full_like(far, -math.inf)).reshape(height, width)
    first_step = options.initial_step * 2.0 * math.sqrt(3.0) * bound
    tol = options.tolerance

    n = options.tiles_per_side
    row_ticks = torch.unique_consecutive(torch.arange(n + 1, device=device) * height // n)
    col_ticks = torch.unique_consecutive(torch.arange(n + 1, device=device) * width // n)
    r0 = row_ticks[:-1].repeat_interleave(len(col_ticks) - 1)
    r1 = row_ticks[1:].repeat_interleave(len(col_ticks) - 1)
    c0 = col_ticks[:-1].repeat(len(row_ticks) - 1)
    c1 = col_ticks[1:].repeat(len(row_ticks) - 1)
    t, t_end = _tile_extremes(near_img, far_img, r0, r1, c0, c1)
    step = torch.full_like(t, first_step)
    tiles_formed, tile_steps, rounds = len(t), 0, 0
    pixel_parts: list[tuple[torch.Tensor, ...]] = []  # (pixel index, t, step) of single-pixel tiles

    while True:
        live = t <= t_end
        r0, r1, c0, c1, t, t_end, step = (x[live] for x in (r0, r1, c0, c1, t, t_end, step))
        single = ((r1 - r0) == 1) & ((c1 - c0) == 1)
        if single.any():
            pixel_parts.append((r0[single] * width + c0[single], t[single], step[single]))
            multi = ~single
            r0, r1, c0, c1, t, t_end, step = (x[multi] for x in (r0, r1, c0, c1, t, t_end, step))
        if len(t) == 0:
            break

        # The box around each tile's rays over [t, t1]: middle ray, tile sides at depth t1.
        uc = (c0 + c1 - 1).to(dtype) / 2 + 0.5 - width / 2.0
        vc = height / 2.0 - (r0 + r1 - 1).to(dtype) / 2 - 0.5
        hu, hv = (c1 - c0 - 1).to(dtype) / 2, (r1 - r0 - 1).to(dtype) / 2
        offset = uc[:, None] * right + vc[:, None] * up  # [T, 3]
        middle = forward + b * offset
        t1 = torch.minimum(t + step, t_end)
        spread = a + b * t1  # pixel size at depth t1
        centre = eye + a * offset + ((t + t1) / 2)[:, None] * middle
        axes = torch.stack([((t1 - t) / 2)[:, None] * middle, (spread * hu)[:, None] * right,
                            (spread * hv)[:, None] * up], dim=1)
        sure = certified(spec, params, centre, axes, options)
        tile_steps += len(t)
        rounds += 1

        finished = sure & (t1 >= t_end)
        t = torch.where(sure, t + options.safety * (t1 - t), t)
        shrunk = step * options.shrink
        step = torch.where(sure, step * options.grow, shrunk.clamp(min=tol))
        tile_width = spread * torch.maximum(c1 - c0, r1 - r0).to(dtype)
        split = ~finished & ((tile_width > options.refine_width * step) | (~sure & (shrunk < tol))
                             | (rounds >= options.max_steps))
        keep = ~finished & ~split
        parents = [x[split] for x in (r0, r1, c0, c1, t, step)]
        r0, r1, c0, c1, t, t_end, step = (x[keep] for x in (r0, r1, c0, c1, t, t_end, step))
        if len(parents[0]):
            pr0, pr1, pc0, pc1, pt, pstep = parents
            across = (pc1 - pc0) >= (pr1 - pr0)  # halve the longer side
            cmid, rmid = (pc0 + pc1) // 2, (pr0 + pr1) // 2
            kr0 = torch.cat([pr0, torch.where(across, pr0, rmid)])
            kr1 = torch.cat([torch.where(across, pr1, rmid), pr1])
            kc0 = torch.cat([pc0, torch.where(across, cmid, pc0)])
            kc1 = torch.cat([torch.where(across, cmid, pc1), pc1])
            lo, hi = _tile_extremes(near_img, far_img, kr0, kr1, kc0, kc1)
            r0, r1 = torch.cat([r0, kr0]), torch.cat([r1, kr1])
            c0, c1 = torch.cat([c0, kc0]), torch.cat([c1, kc1])
            t = torch.cat([t, torch.maximum(pt.repeat(2), lo)])
            t_end = torch.cat([t_end, hi])
            step = torch.cat([step, pstep.repeat(2)])
            tiles_formed += len(kr0)

    result_t = torch.full((height * width,), math.nan, dtype=dtype, device=device)
    result_hit = torch.zeros(height * width, dtype=torch.bool, device=device)
    result_steps = torch.zeros(height * width, dtype=torch.long, device=device)
    result_unfinished = torch.zeros(height * width, dtype=torch.bool, device=device)
    if pixel_parts:
        pixels = torch.cat([p[0] for p in pixel_parts])
        start = torch.maximum(torch.cat([p[1] for p in pixel_parts]), near[pixels])
        cast = _march(spec, params, origins[pixels], directions[pixels], start, far[pixels],
                      torch.cat([p[2] for p in pixel_parts]), options)
        result_t[pixels], result_hit[pixels] = cast.t, cast.hit
        result_steps[pixels], result_unfinished[pixels] = cast.steps, cast.unfinished
    stats = {"tile_steps": int(tile_steps), "ray_steps": int(result_steps.sum()), "tiles": int(tiles_formed),
             "tile_rounds": int(rounds)}
    return RayCast(result_t, result_hit, result_steps, result_unfinished), stats


# ----------------------------------------------------------------------------- sphere tracing


def sphere_trace(spec: FieldSpec, params: Params, origins: torch.Tensor, directions: torch.Tensor,
                 bound: float = 1.0, options: CastOptions = CastOptions()) -> RayCast:
    """Sphere tracing of rays o + t d inside [-bound, bound]^3: t += step_scale |f| / |d| until
    |f| < tolerance (a hit, moved on by f / |d|), the ray leaves the cube (no hit), or
    max_steps field evaluations (no hit, unfinished). Safe for true SDFs only."""
    device, dtype = _device_dtype(params)
    origins, directions = origins.to(device, dtype), directions.to(device, dtype)
    n = len(origins)
    near, far = clip_to_cube(origins, directions, bound)
    out_t = torch.full((n,), math.nan, dtype=dtype, device=device)
    out_hit = torch.zeros(n, dtype=torch.bool, device=device)
    out_steps = torch.zeros(n, dtype=torch.long, device=device)
    out_unfinished = torch.zeros(n, dtype=torch.bool, device=device)
    index = torch.nonzero(near <= far).flatten()
    o, d, t, t_end = origins[index], directions[index], near[index], far[index]
    speed = d.norm(dim=-1).clamp(min=1e-30)
    count = torch.zeros(len(index), dtype=torch.long, device=device)
    while len(index):
        f = field_values(spec, params, o + t[:, None] * d)
        count += 1
        hit = f.abs() < options.tolerance
        t = torch.where(hit, t + f / speed, t + options.step_scale * f.abs() / speed)
        miss = ~hit & (t > t_end)
        gave_up = ~hit & ~miss & (count >= options.max_steps)
        done = hit | miss | gave_up
        if done.any():
            rows = index[done]
            out_t[rows] = torch.where(hit[done], t[done], torch.full_like(t[done], math.nan))
            out_hit[rows], out_steps[rows], out_unfinished[rows] = hit[done], count[done], gave_up[done]
            keep = ~done
            index, o, d, t, t_end, speed, count = (x[keep] for x in (index, o, d, t, t_end, speed, count))
    return RayCast(out_t, out_hit, out_steps, out_unfinished)


# ----------------------------------------------------------------------------- images


def render_field(spec: FieldSpec, params: Params, camera: Camera, method: str = "frusta", bound: float = 1.0,
                 options: CastOptions = CastOptions()) -> FieldRender:
    """Depth, normals and hit mask of the field's zero level set seen by `camera`.

    method: "ray" (range-bound casting per pixel), "frusta" (by tiles, then per pixel) or
    "sphere" (sphere tracing; true SDFs only). Only [-bound, bound]^3 is searched.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    device, dtype = _device_dtype(params)
    height, width = camera.size
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    clock = time.perf_counter()
    stats: dict = {"method": method, "size": [height, width], "mode": options.mode, "max_symbols": options.max_symbols}
    if method == "frusta":
        cast, extra = cast_frusta(spec, params, camera, bound, options)
        stats.update(extra)
        stats["steps"] = extra["tile_steps"] + extra["ray_steps"]
        origins, directions = camera.rays(device, dtype, unit=False)
    else:
        origins, directions = camera.rays(device, dtype, unit=True)
        tracer = cast_rays if method == "ray" else sphere_trace
        cast = tracer(spec, params, origins, directions, bound, options)
        stats["steps"] = int(cast.steps.sum())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats["seconds"] = time.perf_counter() - clock

    clock = time.perf_counter()
    hit = cast.hit
    points = origins[hit] + cast.t[hit, None] * directions[hit]
    normals = torch.zeros(height * width, 3, dtype=dtype, device=device)
    normals[hit] = field_normals(spec, params, points)
    depth = torch.full((height * width,), math.inf, dtype=dtype, device=device)
    depth[hit] = cast.t[hit] * directions[hit].norm(dim=-1)
    stats["normal_seconds"] = time.perf_counter() - clock
    stats["hits"] = int(hit.sum())
    stats["unfinished"] = int(cast.unfinished.sum())
    return FieldRender(depth.reshape(height, width), normals.reshape(height, width, 3),
                       hit.reshape(height, width), stats)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def depth_image(depth, hit, near: Optional[float] = None, far: Optional[float] = None) -> np.ndarray:
    """Grey picture of a depth map [H, W]: nearest hit dark (32), farthest light (224), no hit white.

    near / far: the depths mapped to the ends (default: the hits' range). Returns [H, W, 3] uint8.
    """
    depth, hit = _numpy(depth).astype(np.float64), _numpy(hit).astype(bool)
    image = np.full(depth.shape + (3,), BACKGROUND, dtype=np.uint8)
    if not hit.any():
        return image
    near = float(depth[hit].min()) if near is None else near
    far = float(depth[hit].max()) if far is None else far
    scale = np.clip((depth[hit] - near) / max(far - near, 1e-12), 0.0, 1.0)
    image[hit] = np.rint(32.0 + 192.0 * scale)[:, None].astype(np.uint8)
    return image


def normal_image(normals, hit) -> np.ndarray:
    """Normals [H, W, 3] as colours (n + 1) / 2 in RGB, no hit white: [H, W, 3] uint8."""
    normals, hit = _numpy(normals).astype(np.float64), _numpy(hit).astype(bool)
    image = np.full(normals.shape, BACKGROUND, dtype=np.uint8)
    image[hit] = np.rint(255.0 * np.clip((normals[hit] + 1.0) / 2.0, 0.0, 1.0)).astype(np.uint8)
    return image


def write_render(result: FieldRender, prefix) -> dict:
    """Write `prefix`-depth.png and `prefix`-normals.png (with `render.write_png`); returns their paths."""
    prefix = str(prefix)
    return {"depth": write_png(depth_image(result.depth, result.hit), prefix + "-depth.png"),
            "normals": write_png(normal_image(result.normals, result.hit), prefix + "-normals.png")}
