"""Camera rays of posed pinhole images, and where rays cross the cube [-bound, bound]^3.

Conventions (NeRF Blender, i.e. OpenGL; see `inrcore.nerf.scenes`): a pose is a 4x4 camera-to-world
matrix [R | t]; the camera looks down its local -z, +x is image right, +y is image up. Pixel
(row v, column u) has its centre at (u + 0.5, v + 0.5), so its camera-space direction is

    ((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1)

and its world ray starts at t (the camera centre) with direction R @ that, normalised to unit
length. Ray distances are along unit directions, so they are metric (the scene's near and far
apply to them directly).

Functions take tensors and work on their device and dtype; nothing here picks a device.
"""

from __future__ import annotations

import torch

from inrcore.geometry.cameras import Intrinsics


def camera_directions_from_intrinsics(intrinsics: Intrinsics, device=None,
                                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The camera-space direction through the centre of each pixel: [H, W, 3], not normalised (z = -1).

    Entry [v, u] is ((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1).
    """
    u = torch.arange(intrinsics.width, device=device, dtype=torch.float64) + 0.5  # [W]
    v = torch.arange(intrinsics.height, device=device, dtype=torch.float64) + 0.5  # [H]
    x = ((u - intrinsics.cx) / intrinsics.fx)[None, :].expand(intrinsics.height, -1)  # [H, W]
    y = (-(v - intrinsics.cy) / intrinsics.fy)[:, None].expand(-1, intrinsics.width)  # [H, W]
    z = torch.full_like(x, -1.0)
    return torch.stack([x, y, z], dim=-1).to(dtype)


def rays_from_cameras(poses: torch.Tensor, intrinsics: Intrinsics) -> tuple[torch.Tensor, torch.Tensor]:
    """One ray through the centre of every pixel of every camera.

    Args:
        poses: [N, 4, 4] camera-to-world matrices (any leading batch shape [..., 4, 4] works, and
            [..., 3, 4] too); floating point, on any device. A numpy array is converted.
        intrinsics: the camera shared by all poses.
    Returns:
        origins [N, H, W, 3] (each camera's centre, repeated over its pixels) and unit
        directions [N, H, W, 3], on the poses' device and in their dtype.
    """
    poses = torch.as_tensor(poses)
    if not poses.is_floating_point():
        poses = poses.to(torch.float32)
    if poses.ndim < 2 or poses.shape[-1] != 4 or poses.shape[-2] not in (3, 4):
        raise ValueError(f"poses must have shape [..., 4, 4] (or [..., 3, 4]), got {list(poses.shape)}")
    camera = camera_directions_from_intrinsics(intrinsics, device=poses.device, dtype=poses.dtype)  # [H, W, 3]
    rotation = poses[..., :3, :3]  # [..., 3, 3]
    batch = poses.shape[:-2]
    directions = torch.einsum("...ij,hwj->...hwi", rotation, camera)  # [..., H, W, 3]
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = poses[..., None, None, :3, 3].expand(*batch, intrinsics.height, intrinsics.width, 3).contiguous()
    return origins, directions


def ray_box_intersection(origins: torch.Tensor, directions: torch.Tensor,
                         bound: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where rays o + t d, t >= 0, are inside the cube [-bound, bound]^3 (the slab test).

    Args:
        origins: [R, 3] (any leading shape [..., 3] works).
        directions: [R, 3], need not be unit (t is then in units of |d|); zero components are allowed.
        bound: half the cube's side, > 0.
    Returns:
        t_near [R] (clamped at 0: a ray starting inside the cube has t_near = 0), t_far [R] and
        hit [R] bool (t_far > t_near: the ray spends a positive length inside the closed cube). Rays
        that miss (including those touching it at a single point, those with the cube behind them
        and zero directions) have hit False and t_near = t_far = 0.
    """
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound!r}")
    if origins.shape[-1:] != (3,) or directions.shape[-1:] != (3,):
        raise ValueError(f"origins and directions must have shape [..., 3], got {list(origins.shape)} and "
                         f"{list(directions.shape)}")
    t_near, t_far = clip_to_cube(origins, directions, bound)
    hit = (t_far > t_near) & (directions != 0).any(dim=-1)
    zero = torch.zeros_like(t_near)
    return torch.where(hit, t_near, zero), torch.where(hit, t_far, zero), hit


def clip_to_cube(origins: torch.Tensor, directions: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The slab test: where rays o + t d (t >= 0) are inside [-bound, bound]^3, as (t_near, t_far),
    [...] each, t_near clamped at 0. A ray missing the cube has t_near > t_far.

    A direction component of 0: that slab holds the whole ray (origin within it) or none of it.
    """
    parallel = directions == 0
    safe = torch.where(parallel, torch.ones_like(directions), directions)
    t1, t2 = (-bound - origins) / safe, (bound - origins) / safe
    lower, upper = torch.minimum(t1, t2), torch.maximum(t1, t2)
    within = origins.abs() <= bound
    infinity = torch.full_like(lower, float("inf"))
    lower = torch.where(parallel, torch.where(within, -infinity, infinity), lower)
    upper = torch.where(parallel, torch.where(within, infinity, -infinity), upper)
    return lower.amax(dim=-1).clamp(min=0.0), upper.amin(dim=-1)
