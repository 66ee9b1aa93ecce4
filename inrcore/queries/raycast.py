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
from dataclasses import dataclass

import torch

from inrcore.fields.gradients import field_values
from inrcore.fields.networks import FieldSpec, Params, device_dtype_of
from inrcore.geometry.rays import clip_to_cube
from inrcore.queries.bounds import UNKNOWN, range_bound
from inrcore.queries.settings import CastOptions


METHODS = ("ray", "frusta", "sphere")


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


# ----------------------------------------------------------------------------- cameras


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
    device, dtype = device_dtype_of(params)
    origins, directions = origins.to(device, dtype), directions.to(device, dtype)
    near, far = clip_to_cube(origins, directions, bound)
    speed = directions.norm(dim=-1).clamp(min=1e-30)
    step = options.initial_step * 2.0 * math.sqrt(3.0) * bound / speed
    return _march(spec, params, origins, directions, near, far, step, options)


# ----------------------------------------------------------------------------- frusta


# ----------------------------------------------------------------------------- sphere tracing


def sphere_trace(spec: FieldSpec, params: Params, origins: torch.Tensor, directions: torch.Tensor,
                 bound: float = 1.0, options: CastOptions = CastOptions()) -> RayCast:
    """Sphere tracing of rays o + t d inside [-bound, bound]^3: t += step_scale |f| / |d| until
    |f| < tolerance (a hit, moved on by f / |d|), the ray leaves the cube (no hit), or
    max_steps field evaluations (no hit, unfinished). Safe for true SDFs only."""
    device, dtype = device_dtype_of(params)
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


