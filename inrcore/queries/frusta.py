"""Frustum casting (Sharp & Jacobson 2022): whole tiles of a camera's pixels certified empty by range
bounds at once, then per-ray casting where they are not; cameras and depth and normal pictures.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Optional

import numpy as np
import torch

from inrcore.fields.gradients import field_normals
from inrcore.fields.networks import FieldSpec, Params, device_dtype_of
from inrcore.geometry.cameras import camera_axes
from inrcore.geometry.images import write_png
from inrcore.geometry.rays import clip_to_cube
from inrcore.geometry.render import BACKGROUND
from inrcore.queries.raycast import METHODS, RayCast, _march, cast_rays, certified, sphere_trace
from inrcore.queries.settings import CastOptions


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
    device, dtype = device_dtype_of(params)
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


def render_field(spec: FieldSpec, params: Params, camera: Camera, method: str = "frusta", bound: float = 1.0,
                 options: CastOptions = CastOptions()) -> FieldRender:
    """Depth, normals and hit mask of the field's zero level set seen by `camera`.

    method: "ray" (range-bound casting per pixel), "frusta" (by tiles, then per pixel) or
    "sphere" (sphere tracing; true SDFs only). Only [-bound, bound]^3 is searched.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    device, dtype = device_dtype_of(params)
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
