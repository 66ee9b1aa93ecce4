"""A trained radiance field's measurement and pictures: test views (PSNR, SSIM, depth) and a turntable
GIF within a time budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from inrcore.geometry.cameras import Intrinsics, camera_axes
from inrcore.geometry.imagemetrics import psnr, ssim
from inrcore.geometry.rays import rays_from_cameras
from inrcore.nerf.models import NgpRenderer, render_rays_in_chunks
from inrcore.nerf.scenes import SceneSplit
from inrcore.nerf.settings import NerfConfig, NerfPicturesConfig


def view_indices(count: int, wanted: int) -> list[int]:
    """`wanted` view indices spread evenly over `count` views."""
    if wanted >= count:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / max(wanted - 1, 1))) for i in range(wanted)})


def render_view(renderer, pose: np.ndarray, intrinsics: Intrinsics, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Render one camera (pose [4, 4] camera-to-world): "rgb" [H, W, 3] float32, "depth" [H, W],
    "opacity" [H, W], on the renderer's device, deterministically."""
    device = _device_of(renderer)
    poses = torch.as_tensor(np.asarray(pose, dtype=np.float32)[None], device=device)
    origins, directions = rays_from_cameras(poses, intrinsics)
    out = render_rays_in_chunks(renderer, origins.reshape(-1, 3), directions.reshape(-1, 3), chunk)
    h, w = intrinsics.height, intrinsics.width
    return {"rgb": out["rgb"].reshape(h, w, 3).clamp(0, 1).cpu().numpy(),
            "depth": out["depth"].reshape(h, w).cpu().numpy(), "opacity": out["opacity"].reshape(h, w).cpu().numpy()}


def evaluate_views(renderer, split: SceneSplit, indices: Optional[list[int]] = None,
                   chunk: int = 4096) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean PSNR and SSIM of the renderer over views `indices` of `split` (default all), and the
    rendered images [H, W, 3] uint8."""
    indices = list(range(len(split.images))) if indices is None else indices
    psnrs, ssims, images = [], [], []
    for i in indices:
        rgb = render_view(renderer, split.poses[i], split.intrinsics, chunk)["rgb"]
        psnrs.append(float(psnr(rgb, split.images[i])))
        ssims.append(float(ssim(rgb, split.images[i])))
        images.append(to_uint8(rgb))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}, images


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def depth_to_image(depth: np.ndarray, opacity: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth [H, W] as a grey picture [H, W, 3] uint8: near is dark, far light, empty white."""
    scaled = np.clip((depth - near) / max(far - near, 1e-9), 0.0, 1.0)
    grey = 0.1 + 0.8 * scaled
    grey = grey * opacity + (1.0 - opacity)
    return to_uint8(np.repeat(grey[..., None], 3, axis=-1))


def orbit_poses(n: int, radius: float, elevation_deg: float = 30.0) -> np.ndarray:
    """n camera-to-world poses [n, 4, 4] float32 on a circle around the y axis at `elevation_deg`,
    looking at the origin, for turntables. Camera k is the view of `camera_axes` at azimuth
    360 k / n degrees: it sits at radius * towards_camera, with right, up and towards_camera as
    its x, y and z axes (y up, its -z towards the origin)."""
    poses = np.tile(np.eye(4), (n, 1, 1))
    for k in range(n):
        towards, right, up = camera_axes(360.0 * k / n, elevation_deg)
        poses[k, :3, 0], poses[k, :3, 1], poses[k, :3, 2], poses[k, :3, 3] = right, up, towards, radius * towards
    return poses.astype(np.float32)


def eval_rays(config: NerfConfig, test: SceneSplit) -> int:
    """How many rays one in-training evaluation renders: its `eval_views` test views' pixels."""
    return len(view_indices(len(test.images), config.eval_views)) * test.intrinsics.width * test.intrinsics.height


@dataclass
class ViewMeasurement:
    """A trained field measured on held-out views (`measure_test_views`).

    psnr, ssim: means over the measured views `indices` (of the split); seconds: the time
    their rendering took. `shown` are the views pictured in test_views.png and depth.png, with
    their renders and depth pictures ([H, W, 3] uint8 each) kept from the measurement.
    """

    psnr: float
    ssim: float
    indices: list[int]
    seconds: float
    shown: list[int]
    renders: list[np.ndarray]
    depths: list[np.ndarray]


def measure_test_views(renderer, test: SceneSplit, views: Optional[int] = None, shown_views: int = 4,
                       chunk: int = 4096, on_view: Optional[Callable[[int, int, float], None]] = None
                       ) -> ViewMeasurement:
    """Render `views` test views spread evenly (None: every one), each once: their mean PSNR and
    SSIM, with the renders and depth pictures of `shown_views` of them kept for the pictures.

    on_view: called with (views done, views in all, seconds so far) after each view.
    """
    indices = list(range(len(test.images))) if views is None else view_indices(len(test.images), views)
    shown = [indices[i] for i in view_indices(len(indices), shown_views)]
    near, far = _depth_range(renderer, test)
    psnrs, ssims, renders, depths = [], [], [], []
    start = time.perf_counter()
    for done, i in enumerate(indices, start=1):
        view = render_view(renderer, test.poses[i], test.intrinsics, chunk)
        psnrs.append(float(psnr(view["rgb"], test.images[i])))
        ssims.append(float(ssim(view["rgb"], test.images[i])))
        if i in shown:
            renders.append(to_uint8(view["rgb"]))
            depths.append(depth_to_image(view["depth"], view["opacity"], near, far))
        if on_view:
            on_view(done, len(indices), time.perf_counter() - start)
    return ViewMeasurement(float(np.mean(psnrs)), float(np.mean(ssims)), indices, time.perf_counter() - start,
                           shown, renders, depths)


def write_test_pictures(measured: ViewMeasurement, test: SceneSplit, folder) -> dict[str, Path]:
    """`test_views.png` (the shown views' renders above their ground truth) and `depth.png` (their
    depth pictures) in `folder`, from what the measurement kept: nothing is rendered again."""
    from inrcore.geometry.images import image_grid, write_png

    folder = Path(folder)
    columns = len(measured.shown)
    truth = [to_uint8(test.images[i]) for i in measured.shown]
    return {"test_views": write_png(image_grid(measured.renders + truth, columns=columns), folder / "test_views.png"),
            "depth": write_png(image_grid(measured.depths, columns=columns), folder / "depth.png")}


MIN_PICTURE_SECONDS = 30.0
PICTURE_SHARE = 0.1


def picture_budget(pictures: NerfPicturesConfig, train_seconds: float) -> float:
    """The turntable's time budget: `pictures.seconds`, else PICTURE_SHARE (a tenth) of the
    training time, at least MIN_PICTURE_SECONDS."""
    if pictures.seconds is not None:
        return float(pictures.seconds)
    return max(MIN_PICTURE_SECONDS, PICTURE_SHARE * float(train_seconds))


def frames_within_budget(frames: int, seconds_per_frame: float, budget: Optional[float]) -> int:
    """How many of `frames` turntable frames fit in `budget` seconds at `seconds_per_frame` each
    (at least 1, the one already rendered when this is asked; None: no budget)."""
    if budget is None or seconds_per_frame <= 0:
        return frames
    return max(1, min(frames, int(budget // seconds_per_frame)))


def measured_view_count(pictures: NerfPicturesConfig, test: SceneSplit) -> int:
    """How many views of `test` the measurement renders: `pictures.test_views`, at most all."""
    return len(test.images) if pictures.test_views is None else min(pictures.test_views, len(test.images))


def seconds_after_training(seconds_per_ray: float, test: SceneSplit, pictures: NerfPicturesConfig,
                           budget: float) -> dict[str, float]:
    """What measuring and picturing will take at `seconds_per_ray` (from an in-training evaluation):
    {"measure": the measured views' pixels x seconds_per_ray, "turntable": its frames' pixels x
    seconds_per_ray, at most `budget`}."""
    count = measured_view_count(pictures, test)
    small = test.intrinsics.scaled_to(pictures.turntable_size)
    turntable = pictures.turntable_frames * small.width * small.height * seconds_per_ray
    return {"measure": count * test.intrinsics.width * test.intrinsics.height * seconds_per_ray,
            "turntable": min(turntable, budget)}


@dataclass
class Turntable:
    """A written turntable: its file (None without frames), frames written and asked for, the
    frame size (width, height) and the seconds it took."""

    path: Optional[Path]
    frames: int
    requested: int
    size: tuple[int, int]
    seconds: float


def render_turntable(renderer, test: SceneSplit, path, frames: int, size: int, budget: Optional[float],
                     chunk: int = 4096, on_frame: Optional[Callable[[int, int, float], None]] = None) -> Turntable:
    """`frames` novel views on a circle at the test cameras' mean distance, 30 degrees up, each
    `size` pixels on its longer side (`Intrinsics.scaled_to`), as a looping GIF at `path`.

    The first frame is timed; when all `frames` would not fit in `budget` seconds, the GIF gets
    as many as fit (`frames_within_budget`), still spread over the whole circle (every count
    of frames starts at the same view). on_frame: called with (frames done, frames in all,
    seconds so far) after each frame.
    """
    from inrcore.geometry.images import write_gif

    intrinsics = test.intrinsics.scaled_to(size)
    if frames <= 0:
        return Turntable(None, 0, 0, (intrinsics.width, intrinsics.height), 0.0)
    radius = float(np.mean(np.linalg.norm(test.poses[:, :3, 3], axis=1)))
    start = time.perf_counter()
    images = [to_uint8(render_view(renderer, orbit_poses(frames, radius)[0], intrinsics, chunk)["rgb"])]
    count = frames_within_budget(frames, time.perf_counter() - start, budget)
    if on_frame:
        on_frame(1, count, time.perf_counter() - start)
    for done, pose in enumerate(orbit_poses(count, radius)[1:], start=2):
        images.append(to_uint8(render_view(renderer, pose, intrinsics, chunk)["rgb"]))
        if on_frame:
            on_frame(done, count, time.perf_counter() - start)
    written = write_gif(images, path)
    return Turntable(written, count, frames, (intrinsics.width, intrinsics.height), time.perf_counter() - start)


def _depth_range(renderer, split: SceneSplit) -> tuple[float, float]:
    """Distances to show as dark..light in depth pictures: the scene box seen from the cameras."""
    distance = float(np.mean(np.linalg.norm(split.poses[:, :3, 3], axis=1)))
    reach = renderer.field.bound if isinstance(renderer, NgpRenderer) else 1.0
    return max(distance - reach * math.sqrt(3.0), 0.0), distance + reach * math.sqrt(3.0)


def _device_of(renderer) -> torch.device:
    module = next(iter(renderer.modules().values()))
    return next(iter(module.parameters())).device
